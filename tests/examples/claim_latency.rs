//! Benchmark: time from `kubectl apply` of a PostgresDatabase claim to its connection
//! Secret existing in the claim's namespace, on the real testenv servers, and the
//! Kubernetes API writes each claim costs. Prints figures; asserts nothing about speed
//! (shared machines are noisy).
//!
//! ```sh
//! testenv/up
//! cargo build --release --bin tessera
//! cargo run --release -p tessera-tests --example claim_latency [-- ROUNDS]
//! ```

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use tessera_tests::{
    ControllerProcess, TestEnv, apiserver_writes, apply, install_crds, install_postgres_platform,
    namespace, wait_for, yaml_docs,
};

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let env = TestEnv::load();
    let client = env.kube().await;
    install_crds(&client).await.expect("CRDs");
    install_postgres_platform(&env, &client).await;
    let _controller = ControllerProcess::spawn(&env, &[]).expect("start tessera controller");
    let ns = namespace(&client, "bench-claims").await;
    let claim = yaml_docs("compositions/postgres/example-claim.yaml")
        .into_iter()
        .next()
        .expect("example claim");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    let run = |i: usize| {
        let mut c = claim.clone();
        let name = format!("bench-{}-{i}", std::process::id());
        c["metadata"]["name"] = name.clone().into();
        c["metadata"]["namespace"] = ns.clone().into();
        c["spec"]["writeConnectionSecretToRef"]["name"] = name.clone().into();
        (name, c)
    };
    // Warm-up: the first claim also waits for the claim CRD and starts watches.
    let (name, c) = run(0);
    apply(&client, c).await;
    wait_for(Duration::from_secs(180), || async {
        secrets.get_opt(&name).await.ok().flatten().map(|_| ())
    })
    .await
    .expect("warm-up claim gets its secret");

    let before = apiserver_writes(&client).await;
    let mut times = Vec::new();
    for i in 1..=rounds {
        let (name, c) = run(i);
        let start = Instant::now();
        apply(&client, c).await;
        loop {
            if secrets.get_opt(&name).await.ok().flatten().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "claim {name}: no secret"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        times.push(start.elapsed());
    }
    // Let the last status writes land before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = apiserver_writes(&client).await;
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("claim applied -> connection secret present, {rounds} claims, one at a time:");
    println!(
        "  median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(times[times.len() / 2]),
        ms(times[(times.len() * 9 / 10).min(times.len() - 1)]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    let mut total = 0;
    println!("Kubernetes API writes per claim (incl. the benchmark's own apply):");
    for (resource, n) in &after {
        let d = n - before.get(resource).copied().unwrap_or(0);
        if d > 0 {
            total += d;
            println!("  {resource:<32} {:.1}", d as f64 / rounds as f64);
        }
    }
    println!("  {:<32} {:.1}", "total", total as f64 / rounds as f64);
}
