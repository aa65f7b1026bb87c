package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tokenmq/tokenmq/api"
	"github.com/tokenmq/tokenmq/config"
	"github.com/tokenmq/tokenmq/token"
)

// clientFlags are the flags every token command takes.
type clientFlags struct {
	endpoint   string
	instanceID string
	dataDir    string
	keyFile    string
	asJSON     bool
	timeout    time.Duration
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	d := config.Default()
	endpoint := os.Getenv("TOKENMQ_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:8080"
	}
	fs.StringVar(&cf.endpoint, "endpoint", endpoint, "token service `URL` (default: $TOKENMQ_ENDPOINT or http://127.0.0.1:8080)")
	fs.StringVar(&cf.instanceID, "instance-id", d.InstanceID, "instance `id`")
	fs.StringVar(&cf.dataDir, "data-dir", d.DataDir, "the data `dir` serve was given: its "+generatedKeyFile+" is the key used when "+envKeyID+" is not set")
	fs.StringVar(&cf.keyFile, "key-file", "", "access key `file` written by serve (default: "+generatedKeyFile+" in --data-dir), used when "+envKeyID+" is not set")
	fs.BoolVar(&cf.asJSON, "json", false, "print the whole API response as JSON")
	fs.DurationVar(&cf.timeout, "timeout", 10*time.Second, "deadline of the API call")
}

// client builds an API client from the environment, or the key file.
func (cf *clientFlags) client() (*api.Client, error) {
	id, secret := os.Getenv(envKeyID), os.Getenv(envKeySecret)
	if id == "" && secret == "" {
		path := cf.keyFile
		if path == "" {
			path = filepath.Join(cf.dataDir, generatedKeyFile)
		}
		sk, err := readStoredKey(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no credentials: set %s and %s, or point --data-dir (or --key-file) at the key serve generated (no %s; serve prints and stores a key on its first start)", envKeyID, envKeySecret, path)
		}
		if err != nil {
			return nil, err
		}
		id, secret = sk.AccessKeyID, sk.AccessKeySecret
	}
	if id == "" || secret == "" {
		return nil, fmt.Errorf("set both %s and %s", envKeyID, envKeySecret)
	}
	return &api.Client{Endpoint: cf.endpoint, AccessKeyID: id, AccessKeySecret: secret}, nil
}

// tokenSubcommand is one `tokenmq token X`.
type tokenSubcommand struct {
	synopsis string
	nargs    int // positional arguments required
	flags    func(fs *flag.FlagSet) func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, stdout io.Writer) (int, error)
}

var tokenSubcommands = map[string]tokenSubcommand{
	"apply":   {"tokenmq token apply --resources 'a/+,b/#' --actions R,W --ttl 1h [--name NAME] [--client-id 'dev-1,GID_pump*']", 0, applyFlags},
	"query":   {"tokenmq token query TOKEN", 1, queryFlags},
	"revoke":  {"tokenmq token revoke TOKEN", 1, revokeFlags},
	"get":     {"tokenmq token get [--display] TOKEN_ID", 1, getFlags},
	"list":    {"tokenmq token list [--page-size N] [--next-token T] [--all]", 0, listFlags},
	"explain": {"tokenmq token explain TOKEN|TOKEN_ID --topic TOPIC --operation publish|subscribe [--client-id ID]", 1, explainFlags},
	"sign":    {"tokenmq token sign ACTION [Name=Value ...]  (prints a signed GET URL, for curl)", -1, signFlags},
}

// tokenOrder is the order the token commands are listed in.
var tokenOrder = []string{"apply", "query", "revoke", "get", "list", "explain", "sign"}

// apiCommands is a group of commands that call the API: `tokenmq token
// X`, `tokenmq clients X`.
type apiCommands struct {
	group string
	subs  map[string]tokenSubcommand
	order []string // the order they are listed in
}

var tokenCommands = apiCommands{"token", tokenSubcommands, tokenOrder}

// usage lists the group's commands.
func (g apiCommands) usage(w io.Writer) {
	fmt.Fprintln(w, "Usage:")
	for _, name := range g.order {
		fmt.Fprintf(w, "  %s\n", g.subs[name].synopsis)
	}
	fmt.Fprintf(w, "\ntokenmq %s CMD -h shows a command's flags. They sign with TOKENMQ_ACCESS_KEY_ID and\n", g.group)
	fmt.Fprintln(w, "TOKENMQ_ACCESS_KEY_SECRET, or else with the key serve stored in its data dir (--data-dir, --key-file).")
}

func tokenCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return tokenCommands.run(ctx, args, stdout, stderr)
}

func (g apiCommands) run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		g.usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		g.usage(stdout)
		return exitOK
	}
	sub, ok := g.subs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tokenmq %s: unknown command %q; use %s\n", g.group, args[0], strings.Join(g.order, ", "))
		return exitUsage
	}
	name := g.group + " " + args[0]
	fs := newFlagSet(name, sub.synopsis, stderr)
	var cf clientFlags
	cf.register(fs)
	runSub := sub.flags(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return flagExit(err)
	}
	if sub.nargs >= 0 && len(pos) != sub.nargs || sub.nargs < 0 && len(pos) == 0 {
		fmt.Fprintf(stderr, "tokenmq %s: want %d argument(s), got %d\nUsage: %s\n", name, sub.nargs, len(pos), sub.synopsis)
		return exitUsage
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq %s: %v\n", name, err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	code, err := runSub(ctx, c, &cf, pos, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "tokenmq %s: %s\n", name, describeError(err, cf.endpoint))
		return exitFailure
	}
	return code
}

// describeError turns client errors into what a user can act on.
func describeError(err error, endpoint string) string {
	var apiErr *api.Error
	var ucErr *api.UCloudError
	var netErr *net.OpError
	switch {
	case errors.As(err, &apiErr):
		msg := fmt.Sprintf("%s: %s (HTTP %d", apiErr.Code, apiErr.Message, apiErr.Status)
		if apiErr.RequestID != "" {
			msg += ", request " + apiErr.RequestID
		}
		return msg + ")"
	case errors.As(err, &ucErr):
		return fmt.Sprintf("RetCode %d: %s", ucErr.RetCode, ucErr.Message)
	case errors.As(err, &netErr):
		return fmt.Sprintf("cannot reach the token service at %s (%v); is `tokenmq serve` running there?", endpoint, netErr.Err)
	}
	return err.Error()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func applyFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	resources := fs.String("resources", "", "comma-separated MQTT topic `filters` (+ and # allowed), 1 to 100")
	actions := fs.String("actions", "", "R (subscribe), W (publish) or R,W")
	ttl := fs.Duration("ttl", time.Hour, "validity (at least 1m, at most 720h)")
	name := fs.String("name", "", "optional token `name`")
	clientIDs := fs.String("client-id", "", "comma-separated client `IDs` that may use the token, each exact or a prefix ending in * (default: any)")
	return func(ctx context.Context, c *api.Client, cf *clientFlags, _ []string, w io.Writer) (int, error) {
		if *resources == "" || *actions == "" {
			return exitUsage, errors.New("--resources and --actions are required")
		}
		req := api.ApplyTokenRequest{
			InstanceID: cf.instanceID, Resources: strings.Split(*resources, ","), Actions: *actions,
			ExpireTime: time.Now().Add(*ttl), Name: *name,
		}
		if *clientIDs != "" {
			req.ClientIDs = strings.Split(*clientIDs, ",")
		}
		resp, err := c.ApplyToken(ctx, req)
		if err != nil {
			return exitFailure, err
		}
		if cf.asJSON {
			return exitOK, printJSON(w, resp)
		}
		fmt.Fprintln(w, resp.Token)
		return exitOK, nil
	}
}

func queryFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	return func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		resp, err := c.QueryToken(ctx, cf.instanceID, args[0])
		if err != nil {
			return exitFailure, err
		}
		code := exitOK
		if !resp.TokenStatus {
			code = exitFailure // scripts: `tokenmq token query T && ...`
		}
		if cf.asJSON {
			return code, printJSON(w, resp)
		}
		if !resp.TokenStatus {
			fmt.Fprintln(w, "invalid (unknown, forged, expired, revoked, or of another instance)")
			return code, nil
		}
		exp := time.UnixMilli(resp.ExpireTime)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "status:\tvalid\n")
		fmt.Fprintf(tw, "token id:\t%s\n", resp.TokenId)
		fmt.Fprintf(tw, "actions:\t%s\n", resp.Actions)
		fmt.Fprintf(tw, "resources:\t%s\n", strings.ReplaceAll(resp.Resources, ",", ", "))
		if resp.ClientId != "" {
			fmt.Fprintf(tw, "client ids:\t%s\n", strings.ReplaceAll(resp.ClientId, ",", ", "))
		}
		fmt.Fprintf(tw, "expires:\t%s (in %s)\n", exp.UTC().Format(time.RFC3339), time.Until(exp).Round(time.Second))
		fmt.Fprintf(tw, "issued by:\t%s\n", resp.AccessKeyId)
		return code, tw.Flush()
	}
}

func revokeFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	return func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		resp, err := c.RevokeToken(ctx, cf.instanceID, args[0])
		if err != nil {
			return exitFailure, err
		}
		if cf.asJSON {
			return exitOK, printJSON(w, resp)
		}
		fmt.Fprintln(w, "revoked")
		return exitOK, nil
	}
}

func getFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	display := fs.Bool("display", false, "show the token itself")
	return func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		id := args[0]
		if _, err := token.ParseID(id); err != nil { // a token: find its ID
			q, err := c.QueryToken(ctx, cf.instanceID, id)
			if err != nil {
				return exitFailure, err
			}
			if !q.TokenStatus {
				return exitFailure, errors.New("not a valid token of this instance, and not a token ID")
			}
			id = q.TokenId
		}
		tk, err := c.GetURocketMQToken(ctx, cf.instanceID, id, *display)
		if err != nil {
			return exitFailure, err
		}
		if cf.asJSON {
			return exitOK, printJSON(w, tk)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "token id:\t%s\n", tk.TokenId)
		fmt.Fprintf(tw, "name:\t%s\n", tk.Name)
		fmt.Fprintf(tw, "instance:\t%s\n", tk.ServiceId)
		fmt.Fprintf(tw, "status:\t%s\n", tk.Status)
		fmt.Fprintf(tw, "type:\t%s\n", tk.Type)
		fmt.Fprintf(tw, "publish:\t%s %s\n", tk.TopicProducePerm, strings.Join(tk.AllowProduceTopicList, ", "))
		fmt.Fprintf(tw, "subscribe:\t%s %s\n", tk.TopicConsumePerm, strings.Join(tk.AllowConsumeTopicList, ", "))
		fmt.Fprintf(tw, "created:\t%s\n", time.Unix(tk.CreateTime, 0).UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "modified:\t%s\n", time.Unix(tk.ModifyTime, 0).UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "expires:\t%s\n", time.Unix(tk.ExpireTime, 0).UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "token:\t%s\n", tk.AKSK.SecretKey)
		return exitOK, tw.Flush()
	}
}

func listFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	pageSize := fs.Int("page-size", api.DefaultPageSize, "tokens per page (1 to 100)")
	next := fs.String("next-token", "", "continue from this NextToken")
	all := fs.Bool("all", false, "follow NextToken to the end")
	return func(ctx context.Context, c *api.Client, cf *clientFlags, _ []string, w io.Writer) (int, error) {
		var tokens []api.TokenInfo
		cursor := *next
		for {
			resp, err := c.ListTokens(ctx, cf.instanceID, *pageSize, cursor)
			if err != nil {
				return exitFailure, err
			}
			tokens = append(tokens, resp.Tokens...)
			cursor = resp.NextToken
			if !*all || cursor == "" {
				break
			}
		}
		if cf.asJSON {
			return exitOK, printJSON(w, api.ListTokensResponse{Tokens: tokens, NextToken: cursor})
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN ID\tNAME\tACTIONS\tSTATUS\tEXPIRES\tRESOURCES")
		now := time.Now()
		for _, t := range tokens {
			status := "valid"
			if t.Revoked {
				status = "revoked"
			} else if now.UnixMilli() >= t.ExpireTime {
				status = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.TokenId, t.Name, t.Actions, status,
				time.UnixMilli(t.ExpireTime).UTC().Format(time.RFC3339), t.Resources)
		}
		if err := tw.Flush(); err != nil {
			return exitFailure, err
		}
		if cursor != "" {
			fmt.Fprintf(w, "more: --next-token %s (or --all)\n", cursor)
		}
		return exitOK, nil
	}
}

func explainFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	topic := fs.String("topic", "", "the topic (publish) or topic filter (subscribe)")
	op := fs.String("operation", "subscribe", "publish or subscribe")
	clientID := fs.String("client-id", "", "explain for a connection with this client `ID` (its ClientId binding and ${clientid} resources)")
	return func(ctx context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		if *topic == "" {
			return exitUsage, errors.New("--topic is required")
		}
		resp, err := c.ExplainAccess(ctx, cf.instanceID, args[0], *topic, *op, *clientID)
		if err != nil {
			return exitFailure, err
		}
		code := exitOK
		if !resp.Allowed {
			code = exitFailure
		}
		if cf.asJSON {
			return code, printJSON(w, resp)
		}
		verdict := "allowed"
		if !resp.Allowed {
			verdict = "denied"
		}
		fmt.Fprintf(w, "%s: %s\n", verdict, resp.Reason)
		return code, nil
	}
}

// signFlags prints a signed GET URL for an action, so that the API can be
// called with curl: tokenmq token sign QueryToken Token=...
func signFlags(fs *flag.FlagSet) func(context.Context, *api.Client, *clientFlags, []string, io.Writer) (int, error) {
	return func(_ context.Context, c *api.Client, cf *clientFlags, args []string, w io.Writer) (int, error) {
		ps := map[string]string{"InstanceId": cf.instanceID}
		for _, kv := range args[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return exitUsage, fmt.Errorf("%q is not Name=Value", kv)
			}
			ps[k] = v
		}
		u, err := c.SignedURL(args[0], ps)
		if err != nil {
			return exitFailure, err
		}
		fmt.Fprintln(w, u)
		return exitOK, nil
	}
}
