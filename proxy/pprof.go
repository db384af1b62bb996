package proxy

import (
	"net/http"
	"net/http/pprof"

	"github.com/labstack/echo/v4"
)

// mountPprof serves net/http/pprof under /debug/pprof/ on the admin Echo
// (admin.pprof: true). Never on the traffic listener: profiles expose
// memory contents and a CPU profile costs the traffic it measures.
func mountPprof(e *echo.Echo) {
	e.GET("/debug/pprof/", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.POST("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	// heap, allocs, goroutine, block, mutex, threadcreate
	e.GET("/debug/pprof/:name", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
}
