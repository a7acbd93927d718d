package relay

// ConnLimits bound the connections the outbound listeners (SMTP and LMTP
// together) take. The defaults never bite a local MTA, which opens tens
// of connections (Postfix default_process_limit is 100). A zero field
// takes its default.
type ConnLimits struct {
	MaxConnections  int // all clients; default 1000
	MaxPerTrustedIP int // per client address in the trusted networks; default 200
	MaxPerIP        int // per other client address (SMTP AUTH users); default 20
}

func (l ConnLimits) withDefaults() ConnLimits {
	orDefault(&l.MaxConnections, 1000)
	orDefault(&l.MaxPerTrustedIP, 200)
	orDefault(&l.MaxPerIP, 20)
	return l
}
