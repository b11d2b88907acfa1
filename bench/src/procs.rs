//! Controller processes under measurement: started with the cluster's kubeconfig, their
//! resident memory sampled from /proc (peak of the sum over the processes) and their CPU
//! time read from /proc/PID/stat.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use std::process::{Child, Command};

/// One process to start: program, arguments, environment, log file.
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// Running processes and their memory sampler.
pub struct Procs {
    children: Vec<Child>,
    pids: Vec<u32>,
    peak_kib: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Procs {
    /// Starts the processes and samples their memory every 100 ms.
    pub fn start(specs: &[Spec]) -> anyhow::Result<Procs> {
        let mut children = Vec::new();
        for s in specs {
            let log = std::fs::File::create(&s.log)
                .with_context(|| format!("create {}", s.log.display()))?;
            let child = Command::new(&s.program)
                .args(&s.args)
                .envs(s.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("start {}", s.program.display()))?;
            children.push(child);
        }
        let pids: Vec<u32> = children.iter().map(Child::id).collect();
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (p, peak) = (pids.clone(), peak_kib.clone());
        let sampler = tokio::spawn(async move {
            loop {
                let sum: u64 = p.iter().map(|pid| rss_kib(*pid)).sum();
                peak.fetch_max(sum, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Procs {
            children,
            pids,
            peak_kib,
            sampler,
        })
    }

    /// Whether every process still runs.
    pub fn alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The peak of the summed resident memory so far, in MiB (sampled; the per-process
    /// high-water marks of /proc are taken too, whichever is higher).
    pub fn peak_mib(&self) -> f64 {
        let hwm: u64 = self.pids.iter().map(|p| status_kib(*p, "VmHWM:")).sum();
        let sampled = self.peak_kib.load(Ordering::Relaxed);
        // The sum of high-water marks can exceed the peak of the sum (peaks at different
        // times); with one process they are the same. Report the sampled peak of the sum
        // when there are several.
        let kib = if self.pids.len() == 1 {
            hwm.max(sampled)
        } else {
            sampled
        };
        kib as f64 / 1024.0
    }

    /// The current resident memory, in MiB.
    pub fn rss_mib(&self) -> f64 {
        self.pids.iter().map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0
    }

    /// User + system CPU seconds used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids.iter().map(|p| cpu_seconds(*p)).sum()
    }

    /// Stops the processes (SIGKILL: nothing to flush) and the sampler.
    pub async fn stop(self) {
        drop(self);
        // Let the API server notice the closed watches before the next controller starts.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.sampler.abort();
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// utime + stime of /proc/PID/stat, in seconds (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// Counts the lines of a log file that contain every one of `needles`.
pub fn count_lines(log: &Path, needles: &[&str]) -> usize {
    std::fs::read_to_string(log)
        .map(|t| {
            t.lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .count()
        })
        .unwrap_or(0)
}
