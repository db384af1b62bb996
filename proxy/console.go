package proxy

import "github.com/cutover/cutover/internal/console"

// mountConsole adds the web console (internal/console) to the admin
// listener: the page under /console/ and its endpoints behind the admin
// token. Its live feed reads the admin API in process; its event streams
// end when the admin server shuts down (they never go idle on their own).
func (s *Server) mountConsole() {
	rt := s.Router
	con := console.New(console.Options{API: s.Admin, Token: func() string { return rt.Config().Admin.Token },
		AuditLog: func() string { return rt.Config().Admin.AuditLog }})
	con.Mount(s.Admin.Echo(), s.Admin.RequireToken)
	s.asrv.RegisterOnShutdown(con.Close)
}
