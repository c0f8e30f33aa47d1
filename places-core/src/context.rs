//! What a place thread knows about itself: the signals its creator can send it (kill, break).
//!
//! Threads that are not places (the program's main thread, plain `std::thread`s) have no context,
//! and their channel operations skip every check here.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};

use crate::error::ChannelError;

/// The uninhabited message of signal channels that only ever disconnect.
pub(crate) enum Never {}

/// The receiving side of a place's signals, installed in the place's thread.
pub(crate) struct PlaceContext {
    /// Disconnected when the place is killed.
    pub(crate) kill: Receiver<Never>,
    /// One `()` per break sent to the place.
    pub(crate) breaks: Receiver<crate::BreakKind>,
    /// Set when the place is killed, so that non-blocking operations notice too.
    pub(crate) killed: Arc<AtomicBool>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Rc<PlaceContext>>> = const { RefCell::new(None) };
}

/// The unwind payload that ends a killed place; never shown as a panic.
pub(crate) struct Killed;

/// The unwind payload of [`exit`](crate::exit) inside a place.
pub(crate) struct Exit(pub(crate) i32);

pub(crate) fn install(ctx: PlaceContext) {
    CONTEXT.with(|c| *c.borrow_mut() = Some(Rc::new(ctx)));
}

pub(crate) fn uninstall() {
    // `try_with`: the thread-local may already be gone if this runs during thread teardown.
    let _ = CONTEXT.try_with(|c| c.borrow_mut().take());
}

/// The current place's context, if this thread is a place.
pub(crate) fn current() -> Option<Rc<PlaceContext>> {
    CONTEXT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Whether this thread is a place that has been killed.
pub(crate) fn is_killed() -> bool {
    CONTEXT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|ctx| ctx.killed.load(Ordering::Relaxed))
        })
        .unwrap_or(false)
}

/// Ends the current place at once if it has been killed.
#[inline]
pub(crate) fn check_killed() {
    let killed = CONTEXT
        .try_with(|c| {
            c.borrow()
                .as_ref()
                .is_some_and(|ctx| ctx.killed.load(Ordering::Relaxed))
        })
        .unwrap_or(false);
    // Unwinding again from a destructor that runs during an unwind would abort the process.
    if killed && !std::thread::panicking() {
        unwind_killed();
    }
}

pub(crate) fn unwind_killed() -> ! {
    std::panic::resume_unwind(Box::new(Killed))
}

/// What a blocking operation of a killed place does: unwind, or, in a destructor that runs while
/// the place is already unwinding (where a second unwind would abort), report the channel as
/// closed.
pub(crate) fn killed<T>() -> Result<T, ChannelError> {
    if std::thread::panicking() {
        return Err(ChannelError::Closed);
    }
    unwind_killed()
}

/// Ends the current place with completion value `code`; outside a place, exits the process.
///
/// Inside a place this unwinds the place's thread (running destructors, closing its channels) and
/// [`Place::wait`](crate::Place::wait) returns `code`, like Racket's `(exit v)` in a place. On
/// any other thread it is [`std::process::exit`].
///
/// # Examples
///
/// ```
/// use places::{place, Place, PlaceChannel};
///
/// #[place]
/// fn picky(ch: PlaceChannel<(), u32>) {
///     if ch.get().unwrap_or(0) > 10 {
///         places::exit(3);
///     }
/// }
///
/// let p: Place<u32, ()> = Place::spawn(picky).unwrap();
/// p.put(42).unwrap();
/// assert_eq!(p.wait(), 3);
/// ```
pub fn exit(code: i32) -> ! {
    if current().is_some() {
        std::panic::resume_unwind(Box::new(Exit(code)))
    }
    std::process::exit(code)
}

/// Lets a long computation inside a place notice a [`kill`](crate::Place::kill) or a
/// [`break_place`](crate::Place::break_place).
///
/// Blocking channel operations check for both on their own; a loop that computes for a long time
/// without touching a channel should call this now and then.
///
/// # Errors
///
/// [`ChannelError::Break`] if a break was sent and not yet seen. A killed place does not return:
/// it unwinds and ends with completion value 1. Outside a place this always returns `Ok(())`.
pub fn check_break() -> Result<(), ChannelError> {
    let Some(ctx) = current() else {
        return Ok(());
    };
    if ctx.killed.load(Ordering::Relaxed) {
        return killed();
    }
    match ctx.breaks.try_recv() {
        Ok(kind) => Err(ChannelError::Break(kind)),
        Err(TryRecvError::Empty) => Ok(()),
        Err(TryRecvError::Disconnected) => killed(),
    }
}
