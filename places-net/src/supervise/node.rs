//! Restarting a node whose process died.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::RestartOnExit;
use crate::client::NodeSlot;
use crate::launch::{launch, NodeOptions};

/// Restarts a node whose process died, by its policy, for as long as its handle lives.
pub(crate) fn supervise_node(
    slot: &NodeSlot,
    host: &str,
    opts: &NodeOptions,
    policy: &Mutex<RestartOnExit>,
) {
    let mut attempts = 0u32;
    let mut started = Instant::now();
    loop {
        // Wait for the current process to be lost (or the handle dropped).
        let generation = loop {
            {
                let st = slot.lock();
                if st.dropped {
                    return;
                }
                if st.link.conn.lost_reason().is_some() {
                    break st.generation;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let restart = policy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .apply(1, started.elapsed(), &mut attempts);
        if !restart {
            return;
        }
        match launch(host, opts) {
            Ok(l) => {
                let old = {
                    let mut st = slot.lock();
                    if st.dropped {
                        drop(st);
                        l.process.shut_down();
                        return;
                    }
                    st.link = l.link;
                    st.addr = l.addr;
                    st.generation = generation + 1;
                    st.process.replace(l.process)
                };
                slot.changed.notify_all();
                started = Instant::now();
                if let Some(p) = old {
                    std::thread::spawn(move || p.shut_down());
                }
            }
            // A failed start counts as a failed run; the policy decides about the next try.
            Err(e) => {
                places_core::log_message(
                    places_core::Severity::Warning,
                    format!("restarting node {host} failed: {e}"),
                );
                started = Instant::now();
            }
        }
    }
}
