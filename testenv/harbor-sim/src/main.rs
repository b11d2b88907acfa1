//! `harbor-sim`: serves the Harbor API simulator (see README.md) until stopped.
//!
//! Usage: `harbor-sim --listen 127.0.0.1:18880`; the administrator's username and password come
//! from `HARBOR_SIM_ADMIN_USERNAME` (default `admin`) and `HARBOR_SIM_ADMIN_PASSWORD`
//! (required). State lives in memory only: a restart starts empty.

use std::net::SocketAddr;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut listen: SocketAddr = "127.0.0.1:18880".parse()?;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args
                    .next()
                    .ok_or("--listen needs an address such as 127.0.0.1:18880")?;
                listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?;
            }
            other => {
                return Err(
                    format!("unknown argument {other:?}; usage: harbor-sim --listen ADDR").into(),
                );
            }
        }
    }
    let username =
        std::env::var("HARBOR_SIM_ADMIN_USERNAME").unwrap_or_else(|_| "admin".to_owned());
    let password = std::env::var("HARBOR_SIM_ADMIN_PASSWORD")
        .map_err(|_| "HARBOR_SIM_ADMIN_PASSWORD must be set (the administrator's password)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("harbor-sim (a simulator of Harbor's v2.0 API) listening on http://{listen}");
        axum::serve(listener, tessera_harbor_sim::router(&username, &password)).await?;
        Ok(())
    })
}
