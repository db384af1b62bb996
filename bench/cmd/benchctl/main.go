// Command benchctl is the benchmark harness behind `make bench` (through bench/run.sh).
//
//	benchctl run [-quick] [-pin=false] [-out DIR] [-only passthrough,chat,openloop,memory,shadow] [-readme README.md]
//	benchctl upstream -addr 127.0.0.1:PORT      trivial keep-alive upstream for pass-through runs
//	benchctl reverseproxy -addr A -upstream URL  a bare httputil.ReverseProxy (the pass-through floor)
//	benchctl load -url URL -users N ...          the chatbot load generator (one run, JSON result)
//	benchctl report -dir DIR                     re-render RESULTS.md and the SVG plots from results.json
//	benchctl readme -dir DIR -readme README.md   regenerate the README's benchmark block from results.json
//
// Everything it starts listens on 127.0.0.1, every load is bounded in time and connections, and every
// process it started is stopped before it exits.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "upstream":
		err = upstreamCmd(os.Args[2:])
	case "reverseproxy":
		err = reverseProxyCmd(os.Args[2:])
	case "load":
		err = loadCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "readme":
		err = readmeCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchctl:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchctl run|upstream|reverseproxy|load|report|readme [flags]")
	os.Exit(2)
}
