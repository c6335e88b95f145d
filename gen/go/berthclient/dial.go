// Package berthclient connects a Go control plane to a berth agent: Dial over a unix socket or
// TCP with TLS or mTLS, the generated TaskService client, a WatchEvents that delivers every event
// exactly once across reconnects and agent restarts, waits for task statuses, and the details of
// the agent's errors.
package berthclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	agentv1 "github.com/berth-dev/berth/gen/go/berth/agent/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
)

// DefaultAddress is where an agent listens unless its config says otherwise.
const DefaultAddress = "unix:///run/berth/berth.sock"

// TLS says how to reach an agent that serves TLS on TCP. Files hold PEM.
type TLS struct {
	// CAFile is the CA that signed the agent's certificate; the system's CAs when empty.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for an agent that asks for one.
	CertFile string
	KeyFile  string
	// ServerName is the name to expect in the agent's certificate, when it differs from the host
	// in the address.
	ServerName string
}

// Options for Dial.
type Options struct {
	// Address is a unix socket ("/run/berth/berth.sock" or "unix:///run/berth/berth.sock") or
	// "host:port".
	Address string
	// TLS, when set, is used for a TCP address.
	TLS *TLS
	// MaxReconnectBackoff is the longest the connection waits between attempts to reach an agent
	// that went away; 5 s when zero.
	MaxReconnectBackoff time.Duration
}

// Client is a connection to one agent. Tasks is the generated client on it; the methods add what
// every control plane writes on top of it.
type Client struct {
	Tasks agentv1.TaskServiceClient
	conn  *grpc.ClientConn
}

// maxMessageBytes is what the client accepts: more than the largest message the agent sends (3 MiB).
const maxMessageBytes = 4 << 20

// The flow-control windows the client grants the agent: a stream's holds the largest message the
// agent sends, and the connection's a few of them. Fixed windows also turn off grpc-go's estimate
// of the link's bandwidth-delay product, which answers every data frame that arrives on an idle
// link with a connection window update and a PING: on a WatchEvents stream, where events come one
// message at a time, that is a write for the client and a PING ACK for the agent per message.
const (
	streamWindowBytes     = 4 << 20
	connectionWindowBytes = 16 << 20
)

// Dial connects to an agent. Like grpc.Dial it does not wait for the agent: calls fail with
// Unavailable while it cannot be reached, and the connection keeps trying.
func Dial(opts Options) (*Client, error) {
	address := opts.Address
	if address == "" {
		address = DefaultAddress
	}
	maxBackoff := opts.MaxReconnectBackoff
	if maxBackoff == 0 {
		maxBackoff = 5 * time.Second
	}
	dialOptions := []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes)),
		grpc.WithInitialWindowSize(streamWindowBytes),
		grpc.WithInitialConnWindowSize(connectionWindowBytes),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	target := address
	if path, ok := unixPath(address); ok {
		dialer := func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}
		// The passthrough resolver hands the path to the dialer as it is.
		target = "passthrough:///" + path
		dialOptions = append(dialOptions, grpc.WithContextDialer(dialer), grpc.WithAuthority("localhost"))
	}
	if opts.TLS != nil {
		config, err := tlsConfig(opts.TLS)
		if err != nil {
			return nil, err
		}
		dialOptions = append(dialOptions, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		dialOptions = append(dialOptions, grpc.WithInsecure())
	}
	conn, err := grpc.Dial(target, dialOptions...)
	if err != nil {
		return nil, fmt.Errorf("berthclient: dial %s: %w", address, err)
	}
	return &Client{Tasks: agentv1.NewTaskServiceClient(conn), conn: conn}, nil
}

// Close closes the connection; calls in flight fail with Canceled.
func (c *Client) Close() error {
	return c.conn.Close()
}

func unixPath(address string) (string, bool) {
	if strings.HasPrefix(address, "unix://") {
		return strings.TrimPrefix(address, "unix://"), true
	}
	if strings.HasPrefix(address, "unix:") {
		return strings.TrimPrefix(address, "unix:"), true
	}
	if strings.HasPrefix(address, "/") {
		return address, true
	}
	return "", false
}

func tlsConfig(t *TLS) (*tls.Config, error) {
	config := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("berthclient: read the CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("berthclient: no certificate in %s", t.CAFile)
		}
		config.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("berthclient: a client certificate and its key go together")
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("berthclient: load the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}
