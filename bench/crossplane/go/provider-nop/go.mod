module tessera.dev/bench/provider-nop

go 1.26.8

require github.com/crossplane-contrib/provider-nop v0.5.0 // indirect
