//! A node process from its start to its end: its output passed on, its readiness line awaited,
//! and its shutdown.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::NetError;
use crate::node::{FAILED_LINE, READY_LINE};

/// Forwards the node's stderr to ours, keeping its last lines for error messages.
pub(crate) fn forward_stderr(child: &mut Child) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(err) = child.stderr.take() {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let mut stderr = std::io::stderr();
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(stderr, "{line}");
                let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if t.len() == 20 {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
    }
    tail
}

/// Reads the node's stdout until its readiness line, forwarding everything else to our stdout.
pub(crate) fn wait_ready(
    host: &str,
    exe: &str,
    child: &mut Child,
    timeout: Duration,
    stderr_tail: &Mutex<VecDeque<String>>,
) -> Result<(String, Option<JoinHandle<()>>), NetError> {
    let (tx, rx) = crossbeam_channel::bounded::<Result<String, String>>(1);
    let mut forwarder = None;
    if let Some(out) = child.stdout.take() {
        forwarder = Some(std::thread::spawn(move || {
            let mut reported = false;
            let mut stdout = std::io::stdout();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Anywhere in the line: a test harness prints `test NAME ... ` without a
                // newline before the node's first line.
                if !reported {
                    if let Some(at) = line.find(READY_LINE) {
                        reported = true;
                        let _ = tx.send(Ok(line[at + READY_LINE.len()..].trim().to_owned()));
                        continue;
                    }
                    if let Some(at) = line.find(FAILED_LINE) {
                        reported = true;
                        let _ = tx.send(Err(line[at + FAILED_LINE.len()..].to_owned()));
                        continue;
                    }
                }
                // What the node's places print shows up here, as Racket's nodes' output does.
                let _ = writeln!(stdout, "{line}");
            }
            if !reported {
                let _ = tx.send(Err(String::new()));
            }
        }));
    }
    let outcome = rx.recv_timeout(timeout);
    let early_exit = |child: &mut Child, output: String| {
        let status = child
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.to_string());
        if output == places_core::NOT_A_NODE_PROGRAM {
            return NetError::NotANodeProgram {
                host: host.to_owned(),
                exe: exe.to_owned(),
            };
        }
        // Give the stderr forwarder a moment to take the last lines (ssh's own message).
        std::thread::sleep(Duration::from_millis(50));
        let tail: Vec<String> = stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let output = match (output.is_empty(), tail.is_empty()) {
            (_, true) => output,
            (true, false) => tail.join(" / "),
            (false, false) => format!("{output} / {}", tail.join(" / ")),
        };
        NetError::ExitedEarly {
            host: host.to_owned(),
            status,
            output,
        }
    };
    match outcome {
        Ok(Ok(addr)) => Ok((addr, forwarder)),
        Ok(Err(output)) => Err(early_exit(child, output)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(NetError::NotReady {
                host: host.to_owned(),
                timeout,
            })
        }
    }
}

/// The process of a node this program started.
pub(crate) struct NodeProcess {
    child: Child,
    /// Holding the node's stdin keeps it alive; dropping it ends the node.
    stdin: Option<ChildStdin>,
    /// Copies the node's stdout to ours; ends when the node does.
    forwarder: Option<JoinHandle<()>>,
}

impl NodeProcess {
    pub(crate) fn new(
        child: Child,
        stdin: Option<ChildStdin>,
        forwarder: Option<JoinHandle<()>>,
    ) -> Self {
        Self {
            child,
            stdin,
            forwarder,
        }
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Closes the node's stdin, which ends it, and waits (briefly) for it, so that everything its
    /// places printed has been passed on before this program goes on or exits.
    pub(crate) fn shut_down(self) {
        let NodeProcess {
            mut child,
            stdin,
            forwarder,
        } = self;
        drop(stdin);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(f) = forwarder {
            let _ = f.join();
        }
    }
}
