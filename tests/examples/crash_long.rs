//! The long crash run: `cargo run -p tessera-tests --example crash_long -- --kills 500`
//! against a running testenv (`testenv/up`; build `tessera` first with
//! `cargo build --bin tessera`). Options: `--claims N` (default 100), `--kills N`
//! (default 500), `--hook-exits N` (default 10), `--others N` (default 10), `--seed N`
//! (default: `TESSERA_CRASH_SEED` or random). See docs/fault-tests.md.

use std::time::Duration;

use tessera_tests::TestEnv;
use tessera_tests::crash::CrashRun;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cfg = CrashRun {
        claims: 100,
        kills: 500,
        hook_exits: 10,
        others: 10,
        kill_after: Duration::from_millis(200)..Duration::from_millis(3000),
        seed: CrashRun::seed_from_env(),
        converge_timeout: Duration::from_secs(300),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a number"))?;
        match flag.as_str() {
            "--claims" => cfg.claims = value as usize,
            "--kills" => cfg.kills = value as usize,
            "--hook-exits" => cfg.hook_exits = value as usize,
            "--others" => cfg.others = value as usize,
            "--seed" => cfg.seed = value,
            _ => {
                anyhow::bail!("unknown option {flag}; see the comment at the top of crash_long.rs")
            }
        }
    }
    let report = tessera_tests::crash::run(&TestEnv::load(), &cfg).await;
    println!("{report:?}");
    Ok(())
}
