// Command etcd is the upstream etcd server, built from the published
// go.etcd.io/etcd/server/v3 module (its own main module cannot be `go install`ed
// because of replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
