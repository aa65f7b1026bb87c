-- Client binding (ApplyToken ClientId): exact client IDs or prefixes ending in '*'; empty: any client ID.
ALTER TABLE tokens ADD COLUMN client_ids text[] NOT NULL DEFAULT '{}';
