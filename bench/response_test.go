package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadResponse: the generator's response reader gives net/http's
// status and body, response after response on one keep-alive connection,
// and refuses what it cannot frame.
func TestReadResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.(http.Flusher).Flush() // no Content-Length: chunked
			fmt.Fprint(w, "streamed")
		case "/missing":
			http.Error(w, `{"Code":"NotFound"}`, http.StatusNotFound)
		default:
			body := fmt.Sprintf(`{"RequestId":%q,"TokenStatus":true}`, r.URL.Path)
			w.Header().Set("Content-Type", "application/json;charset=utf-8")
			w.Header().Set("Content-Length", fmt.Sprint(len(body))) // as tokenmq's API does
			fmt.Fprint(w, body)
		}
	}))
	defer srv.Close()
	nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	get := func(path string) (int, string, error) {
		if _, err := fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
			t.Fatal(err)
		}
		status, body, err := readResponse(r, []byte("kept:"))
		return status, string(body), err
	}
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/a", `kept:{"RequestId":"/a","TokenStatus":true}`, 200},
		{"/missing", "kept:{\"Code\":\"NotFound\"}\n", 404},
		{"/" + strings.Repeat("b", 5000), `kept:{"RequestId":"/` + strings.Repeat("b", 5000) + `","TokenStatus":true}`, 200},
	} {
		status, body, err := get(tc.path)
		if err != nil || status != tc.status || body != tc.body {
			t.Fatalf("%.20s: got %d %.60q %v, want %d %.60q", tc.path, status, body, err, tc.status, tc.body)
		}
	}
	if _, _, err := get("/chunked"); err == nil || !strings.Contains(err.Error(), "Content-Length") {
		t.Fatalf("a chunked response: %v, want an error naming Content-Length", err)
	}
}
