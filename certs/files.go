package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Errors of loading a certificate and key from files. NewFiles returns
// them; after a successful start, a failed reload is logged and the
// previous certificate stays in use.
var (
	// ErrCertFile: the certificate file is missing, unreadable, or holds
	// no PEM certificate that parses. Fix the file named in the error.
	ErrCertFile = errors.New("certificate file unusable")
	// ErrKeyFile: the key file is missing, unreadable, or holds no PEM
	// private key that parses (PKCS #8, PKCS #1 or SEC 1).
	ErrKeyFile = errors.New("key file unusable")
	// ErrKeyMismatch: the private key is not the key of the first
	// certificate in the certificate file (the leaf). Check that both
	// files come from the same issuance.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
)

// DefaultCheckInterval is how often Files looks at its files for a change.
const DefaultCheckInterval = 5 * time.Second

// Files serves a certificate chain and key read from PEM files, and
// reloads them when either file changes: at most once per CheckInterval, a
// handshake looks at both files' modification time, size and inode (one
// stat each, following symbolic links) and reads them again if any
// changed. A reload that fails (a
// half-written pair, a key that does not match) is logged once per change
// and the previous certificate stays in use.
type Files struct {
	// CheckInterval bounds how often the files are looked at; set it
	// before the first handshake. NewFiles sets DefaultCheckInterval;
	// zero looks at every handshake.
	CheckInterval time.Duration
	// Now is the clock; NewFiles sets time.Now.
	Now func() time.Time

	certFile, keyFile string
	log               *zap.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certStat  fileStat // of the files as last read, successfully or not
	keyStat   fileStat
	lastCheck time.Time
}

// fileStat is what tells that a file changed.
type fileStat struct {
	mod  time.Time
	size int64
	id   [2]uint64 // device and inode, where the system has them
	err  string    // the stat error, if any
}

// NewFiles loads the PEM certificate chain in certFile (leaf first) and the
// PEM private key in keyFile. Its error wraps ErrCertFile, ErrKeyFile or
// ErrKeyMismatch and names the file. log may be nil.
func NewFiles(certFile, keyFile string, log *zap.Logger) (*Files, error) {
	if log == nil {
		log = zap.NewNop()
	}
	f := &Files{
		CheckInterval: DefaultCheckInterval,
		Now:           time.Now,
		certFile:      certFile,
		keyFile:       keyFile,
		log:           log,
	}
	f.certStat, f.keyStat = statFile(certFile), statFile(keyFile)
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	f.cert = cert
	f.lastCheck = f.Now()
	f.logLoaded("certificate loaded", cert)
	return f, nil
}

// GetCertificate returns the current certificate, whatever the client
// asked for: one pair serves every name.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.Current()
}

// Current returns the certificate in use, reloading it first if the files
// changed and the check interval has passed.
func (f *Files) Current() (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.Now()
	if now.Sub(f.lastCheck) >= f.CheckInterval || now.Before(f.lastCheck) {
		f.lastCheck = now
		f.reloadIfChanged()
	}
	return f.cert, nil
}

// Expiry returns when the current certificate expires, under each DNS
// name it carries (its subject's common name if it has none), for
// caliop_certificate_expiry_timestamp_seconds (metrics.WatchCertificates).
// Like a handshake, it picks up rewritten files first.
func (f *Files) Expiry() map[string]time.Time {
	cert, _ := f.Current()
	out := map[string]time.Time{}
	if cert == nil || cert.Leaf == nil {
		return out
	}
	names := cert.Leaf.DNSNames
	if len(names) == 0 && cert.Leaf.Subject.CommonName != "" {
		names = []string{cert.Leaf.Subject.CommonName}
	}
	for _, n := range names {
		out[strings.ToLower(n)] = cert.Leaf.NotAfter
	}
	return out
}

// reloadIfChanged reads the files again if the stat of either differs from
// the last read. f.mu is held.
func (f *Files) reloadIfChanged() {
	cs, ks := statFile(f.certFile), statFile(f.keyFile)
	if cs == f.certStat && ks == f.keyStat {
		return
	}
	f.certStat, f.keyStat = cs, ks
	cert, err := loadPair(f.certFile, f.keyFile)
	if err != nil {
		f.log.Error("certificate reload failed, keeping the previous one",
			zap.String("cert_file", f.certFile), zap.String("key_file", f.keyFile), zap.Error(err))
		return
	}
	f.cert = cert
	f.logLoaded("certificate reloaded", cert)
}

func (f *Files) logLoaded(msg string, cert *tls.Certificate) {
	leaf := cert.Leaf
	f.log.Info(msg,
		zap.String("cert_file", f.certFile),
		zap.Strings("names", leaf.DNSNames),
		zap.Time("not_after", leaf.NotAfter))
	if f.Now().After(leaf.NotAfter) {
		f.log.Warn("certificate expired", zap.String("cert_file", f.certFile), zap.Time("not_after", leaf.NotAfter))
	}
}

func statFile(name string) fileStat {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStat{err: err.Error()}
	}
	return fileStat{mod: fi.ModTime(), size: fi.Size(), id: fileID(fi)}
}

// loadPair reads and checks a certificate chain and its key.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	chain, leaf, err := readChain(certFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: %s is not the key of the certificate in %s", ErrKeyMismatch, keyFile, certFile)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// readChain reads every CERTIFICATE block of a PEM file; the first is the
// leaf.
func readChain(name string) ([][]byte, *x509.Certificate, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrCertFile, err)
	}
	var chain [][]byte
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			chain = append(chain, b.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, nil, fmt.Errorf("%w: %s: no PEM CERTIFICATE block", ErrCertFile, name)
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: first certificate: %v", ErrCertFile, name, err)
	}
	return chain, leaf, nil
}

// readKey reads the first PEM private key of a file.
func readKey(name string) (crypto.Signer, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%w: %s: no PEM PRIVATE KEY block", ErrKeyFile, name)
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		key, err := parseKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %s: %v", ErrKeyFile, name, b.Type, err)
		}
		return key, nil
	}
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
			return k.(crypto.Signer), nil
		default:
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS #8, SEC 1 or PKCS #1 private key")
}
