// Command influxd is a thin wrapper that builds the upstream InfluxDB 2.x server
// from the Go module proxy. Upstream's go.mod carries a replace directive, so
// `go install pkg@version` is refused; a module of our own that requires it works.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/influxdata/influxdb/v2"
	"github.com/influxdata/influxdb/v2/cmd/influxd/launcher"
	_ "github.com/influxdata/influxdb/v2/tsdb/engine/tsm1"
	_ "github.com/influxdata/influxdb/v2/tsdb/index/tsi1"
	"github.com/spf13/viper"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Printf("InfluxDB %s (vitalstream build)\n", version)
		return
	}
	influxdb.SetBuildInfo(version, "vitalstream", "")
	cmd, err := launcher.NewInfluxdCommand(context.Background(), viper.New())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd.SilenceUsage = true
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
