package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Every connection between nodes goes to the node's one cluster address
// (--raft-addr). Its first byte says what it carries; then both ends prove
// they hold the cluster's root key (handshake below), inside TLS when TLS is
// configured. Raft's own traffic and the cluster RPCs (forwarded writes,
// leases, join) share the address.
const (
	connRaft byte = 1
	connRPC  byte = 2
)

// ErrClusterAuth is returned when the other end of a cluster connection
// does not hold this node's root key.
var ErrClusterAuth = errors.New("cluster: the peer does not hold this cluster's root key")

// handshakeTimeout bounds the kind byte and the handshake of a connection.
const handshakeTimeout = 10 * time.Second

const (
	nonceSize     = 32
	handshakeOK   = 0x00
	handshakeFail = 0x01
)

// mux accepts cluster connections and dials them.
type mux struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte      // HMAC key derived from the root key
	tlsServer *tls.Config // nil: plaintext
	tlsClient *tls.Config
	log       *slog.Logger

	raftConns chan net.Conn
	rpcConns  chan net.Conn
	closeOnce sync.Once
	closed    chan struct{}
}

func newMux(bind string, advertise net.Addr, key []byte, tlsServer, tlsClient *tls.Config, log *slog.Logger) (*mux, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	m := &mux{ln: ln, advertise: advertise, key: key, tlsServer: tlsServer, tlsClient: tlsClient, log: log,
		raftConns: make(chan net.Conn, 16), rpcConns: make(chan net.Conn, 16), closed: make(chan struct{})}
	go m.serve()
	return m, nil
}

func (m *mux) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			m.log.Warn("cluster accept", "err", err)
			time.Sleep(50 * time.Millisecond) // back off a failing accept (EMFILE); not synchronisation
			continue
		}
		go m.route(c)
	}
}

// route authenticates an accepted connection and hands it to Raft or RPC.
func (m *mux) route(c net.Conn) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if m.tlsServer != nil {
		tc := tls.Server(c, m.tlsServer)
		if err := tc.Handshake(); err != nil {
			m.log.Warn("cluster TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	var kind [1]byte
	if _, err := io.ReadFull(c, kind[:]); err != nil || (kind[0] != connRaft && kind[0] != connRPC) {
		c.Close()
		return
	}
	if err := m.acceptHandshake(c, kind[0]); err != nil {
		m.log.Warn("refused a cluster connection", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	ch := m.raftConns
	if kind[0] == connRPC {
		ch = m.rpcConns
	}
	select {
	case ch <- c:
	case <-m.closed:
		c.Close()
	}
}

// dial opens an authenticated connection of a kind to addr.
func (m *mux) dial(addr string, kind byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	// Leave from the cluster address too, so firewalls (and the partition
	// tests) can tell nodes apart by IP.
	if a, ok := m.advertise.(*net.TCPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: a.IP}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(min(timeout, handshakeTimeout)))
	if m.tlsClient != nil {
		cfg := m.tlsClient.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil && cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster: TLS handshake with %s: %w", addr, err)
		}
		c = tc
	}
	if _, err := c.Write([]byte{kind}); err != nil {
		c.Close()
		return nil, err
	}
	if err := m.dialHandshake(c, kind); err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// The handshake: the dialer sends a nonce; the acceptor answers its own
// nonce and a MAC over both; the dialer checks it and answers its MAC; the
// acceptor checks that and confirms. The MAC key is derived from the root
// key, so only nodes of this cluster get through, and the labels keep one
// side's proof from serving as the other's.
func (m *mux) mac(label string, kind byte, cn, sn []byte) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(label))
	h.Write([]byte{kind})
	h.Write(cn)
	h.Write(sn)
	return h.Sum(nil)
}

func (m *mux) dialHandshake(c net.Conn, kind byte) error {
	cn := make([]byte, nonceSize)
	rand.Read(cn)
	if _, err := c.Write(cn); err != nil {
		return err
	}
	in := make([]byte, nonceSize+sha256.Size)
	if _, err := io.ReadFull(c, in); err != nil {
		return fmt.Errorf("cluster handshake: %w", err)
	}
	sn, proof := in[:nonceSize], in[nonceSize:]
	if !hmac.Equal(proof, m.mac("raftkms/cluster/acceptor/v1", kind, cn, sn)) {
		return ErrClusterAuth
	}
	if _, err := c.Write(m.mac("raftkms/cluster/dialer/v1", kind, cn, sn)); err != nil {
		return err
	}
	var verdict [1]byte
	if _, err := io.ReadFull(c, verdict[:]); err != nil || verdict[0] != handshakeOK {
		return ErrClusterAuth
	}
	return nil
}

func (m *mux) acceptHandshake(c net.Conn, kind byte) error {
	cn := make([]byte, nonceSize)
	if _, err := io.ReadFull(c, cn); err != nil {
		return err
	}
	sn := make([]byte, nonceSize)
	rand.Read(sn)
	if _, err := c.Write(append(sn, m.mac("raftkms/cluster/acceptor/v1", kind, cn, sn)...)); err != nil {
		return err
	}
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c, proof); err != nil {
		return err
	}
	if !hmac.Equal(proof, m.mac("raftkms/cluster/dialer/v1", kind, cn, sn)) {
		c.Write([]byte{handshakeFail})
		return ErrClusterAuth
	}
	_, err := c.Write([]byte{handshakeOK})
	return err
}

func (m *mux) close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// raftLayer is Raft's view of the mux (raft.StreamLayer).
type raftLayer struct{ m *mux }

var _ raft.StreamLayer = raftLayer{}

func (l raftLayer) Accept() (net.Conn, error) {
	select {
	case c := <-l.m.raftConns:
		return c, nil
	case <-l.m.closed:
		return nil, net.ErrClosed
	}
}

func (l raftLayer) Close() error   { return l.m.close() }
func (l raftLayer) Addr() net.Addr { return l.m.advertise }

func (l raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.m.dial(string(address), connRaft, timeout)
}
