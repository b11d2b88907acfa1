module tessera.dev/bench/provider-sql

go 1.26.8

require github.com/crossplane-contrib/provider-sql v0.16.0 // indirect
