//! The process's event loop: one tokio runtime that accepts connections (in a node) and reads
//! every connection's frames. Places run on threads of their own and write their frames
//! themselves, so a message never waits for the loop on its way out.

use std::sync::OnceLock;

/// The event loop, started on first use.
///
/// # Errors
///
/// The operating system's error when the loop's threads cannot be started.
pub(crate) fn runtime() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .thread_name("places-event-loop")
        .build()?;
    // Two threads may race here; the loser's runtime is dropped unused.
    Ok(RUNTIME.get_or_init(|| rt))
}
