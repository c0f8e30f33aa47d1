//! The process's event loop: one tokio runtime, driven by one thread of its own, that accepts
//! connections (in a node) and reads every connection's frames. Places run on threads of their
//! own and write their frames themselves, so a message never waits for the loop on its way out.
//! One thread is enough for a loop that only moves bytes, and it saves the wake-ups of idle
//! sibling workers that a multi-threaded scheduler pays on every event.

use std::sync::OnceLock;

/// The event loop, started on first use.
///
/// # Errors
///
/// The operating system's error when the loop's thread cannot be started.
pub(crate) fn runtime() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static DRIVER: OnceLock<()> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .thread_name("places-blocking")
        .build()?;
    // Two threads may race here; the loser's runtime is dropped unused.
    let rt = RUNTIME.get_or_init(|| rt);
    let mut started = Ok(());
    DRIVER.get_or_init(|| {
        started = std::thread::Builder::new()
            .name("places-event-loop".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .map(drop);
    });
    started.map(|()| rt)
}
