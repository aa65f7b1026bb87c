package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenmq/tokenmq/api"
)

// `tokenmq clients list|kick`: ListClients and KickClient (SPEC §2.2).

var clientsCommands = apiCommands{"clients", map[string]tokenSubcommand{
	"list": {"tokenmq clients list [--token-id ID] [--client-id ID]", 0, clientsListFlags},
	"kick": {"tokenmq clients kick CLIENT_ID", 1, clientsKickFlags},
}, []string{"list", "kick"}}

func clientsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return clientsCommands.run(ctx, args, stdout, stderr)
}

func clientsListFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	tokenID := fs.String("token-id", "", "only the connections that rely on this token `ID`")
	clientID := fs.String("client-id", "", "only the connections of this client `ID`")
	return func(ctx context.Context, c *api.Client, cf *clientFlags, _ []string, w io.Writer) (int, error) {
		var all []api.ClientInfo
		cursor := ""
		for {
			resp, err := c.ListClients(ctx, cf.instanceID, *tokenID, *clientID, 100, cursor)
			if err != nil {
				return exitFailure, err
			}
			all = append(all, resp.Clients...)
			if cursor = resp.NextToken; cursor == "" {
				break
			}
		}
		if cf.asJSON {
			return exitOK, printJSON(w, api.ListClientsResponse{Clients: all, TotalCount: len(all)})
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tREMOTE\tMQTT\tSESSION\tCONNECTED SINCE\tBROKER\tTOKEN IDS")
		for _, ci := range all {
			session := "clean"
			if ci.Persistent {
				session = "persistent"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ci.ClientId, ci.RemoteAddress, protocolName(ci.ProtocolVersion), session,
				time.UnixMilli(ci.ConnectedSince).UTC().Format(time.RFC3339), ci.BrokerId, strings.Join(ci.TokenIds, ","))
		}
		if err := tw.Flush(); err != nil {
			return exitFailure, err
		}
		fmt.Fprintf(w, "%d connection(s)\n", len(all))
		return exitOK, nil
	}
}

// protocolName names an MQTT protocol version.
func protocolName(v int) string {
	switch v {
	case 3:
		return "3.1"
	case 4:
		return "3.1.1"
	case 5:
		return "5"
	}
	return "?"
}

func clientsKickFlags(*flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	return func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		resp, err := c.KickClient(ctx, cf.instanceID, args[0])
		if err != nil {
			return exitFailure, err
		}
		if cf.asJSON {
			return exitOK, printJSON(w, resp)
		}
		if resp.Connections == 0 {
			fmt.Fprintf(w, "kicked %s: no broker reported a connection of it; an offline session of it, if a broker keeps one, is discarded\n", args[0])
		} else {
			fmt.Fprintf(w, "kicked %s: %d connection(s) disconnected within a second, their sessions discarded\n", args[0], resp.Connections)
		}
		return exitOK, nil
	}
}
