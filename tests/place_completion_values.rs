//! `Place::wait` returns the completion value: 0 for `()`, the returned or `exit`ed code, 1 after a
//! panic or a kill; `kill` and `break_place` reach a place blocked in `get`, in a select, or
//! computing with `check_break`.

use std::time::Duration;

use places::prelude::*;
use places::BreakKind;

const LIMIT: Duration = Duration::from_secs(30);

#[place]
fn returns_unit(ch: PlaceChannel<()>) {
    let _ = ch.get();
}

#[place]
fn returns_code(ch: PlaceChannel<(), i32>) -> i32 {
    ch.get().unwrap_or(99)
}

#[place]
fn exits_early(ch: PlaceChannel<(), i32>) -> i32 {
    let code = ch.get().unwrap_or(99);
    places::exit(code);
}

#[place]
fn panics(ch: PlaceChannel<u8>) {
    let _ = ch.get();
    panic!("this place panics on purpose");
}

/// Blocks in `get` forever (its creator never sends); reports its own teardown through a shared
/// vector, so a test can see the thread really unwound.
#[place]
fn blocks(ch: PlaceChannel<(), SharedI64s>) {
    let flags = ch.get().unwrap();
    struct Guard(SharedI64s);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.set(0, 1);
        }
    }
    let _guard = Guard(flags);
    let _ = ch.get();
    unreachable!("the creator never sends a second message");
}

/// Computes until told to stop through a break, checking for it as it goes.
#[place]
fn computes(ch: PlaceChannel<String, ()>) {
    let mut n: u64 = 0;
    loop {
        for _ in 0..10_000 {
            n = std::hint::black_box(n.wrapping_add(1));
        }
        if let Err(e) = places::check_break() {
            let _ = ch.put(format!("stopped: {e}"));
            return;
        }
    }
}

/// Waits in `get` and reports what a break made `get` return.
#[place]
fn reports_break(ch: PlaceChannel<String, ()>) {
    match ch.get() {
        Err(ChannelError::Break(kind)) => {
            let _ = ch.put(format!("{kind}"));
        }
        other => {
            let _ = ch.put(format!("unexpected {other:?}"));
        }
    }
}

#[test]
fn an_entry_returning_unit_completes_with_zero() {
    let p: Place<()> = Place::spawn(returns_unit).unwrap();
    assert_eq!(p.completion(), None);
    p.put(()).unwrap();
    assert_eq!(p.wait(), 0);
    assert_eq!(p.completion(), Some(0));
}

#[test]
fn an_entry_returning_a_code_completes_with_it() {
    let p: Place<i32, ()> = Place::spawn(returns_code).unwrap();
    p.put(7).unwrap();
    assert_eq!(p.wait(), 7);
}

#[test]
fn exit_ends_the_place_with_its_code() {
    let p: Place<i32, ()> = Place::spawn(exits_early).unwrap();
    p.put(3).unwrap();
    assert_eq!(p.wait(), 3);
}

#[test]
fn a_panic_completes_with_one_and_closes_the_channel() {
    let p: Place<u8> = Place::spawn(panics).unwrap();
    p.put(0).unwrap();
    assert_eq!(p.wait(), 1);
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}

#[test]
fn wait_timeout_is_none_while_the_place_runs() {
    let p: Place<()> = Place::spawn(returns_unit).unwrap();
    assert_eq!(p.wait_timeout(Duration::from_millis(20)), None);
    p.put(()).unwrap();
    assert_eq!(p.wait_timeout(LIMIT), Some(0));
}

#[test]
fn kill_ends_a_place_blocked_in_get() {
    let p: Place<SharedI64s, ()> = Place::spawn(blocks).unwrap();
    let flags = SharedI64s::zeroed(1);
    p.put(flags.clone()).unwrap();
    // Let it reach its blocking `get`.
    std::thread::sleep(Duration::from_millis(20));
    let dead = p.dead_evt();
    assert!(!dead.is_ready());
    p.kill();
    assert!(dead.is_ready());
    assert_eq!(p.wait(), 1);
    // The thread unwinds (its guard runs) and closes its channel end.
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
    assert_eq!(flags.get(0), 1, "the place's destructors ran");
}

#[test]
fn kill_keeps_a_completion_value_already_set() {
    let p: Place<()> = Place::spawn(returns_unit).unwrap();
    p.put(()).unwrap();
    assert_eq!(p.wait(), 0);
    p.kill();
    assert_eq!(p.wait(), 0);
}

#[test]
fn break_interrupts_a_get() {
    let p: Place<(), String> = Place::spawn(reports_break).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.break_place();
    assert_eq!(p.get_timeout(LIMIT).unwrap(), "break");
    assert_eq!(p.wait(), 0);
}

#[test]
fn each_break_kind_reaches_the_place_as_sent() {
    for (kind, text) in [
        (BreakKind::Break, "break"),
        (BreakKind::HangUp, "hang-up break"),
        (BreakKind::Terminate, "terminate break"),
    ] {
        let p: Place<(), String> = Place::spawn(reports_break).unwrap();
        p.break_place_with(kind);
        assert_eq!(p.get_timeout(LIMIT).unwrap(), text);
        assert_eq!(p.wait(), 0);
    }
    // A computing place sees the kind at its next check_break.
    let p: Place<(), String> = Place::spawn(computes).unwrap();
    p.handle().break_place_with(BreakKind::Terminate);
    let msg = p.get_timeout(LIMIT).unwrap();
    assert_eq!(
        msg,
        "stopped: the place was sent a terminate break while waiting for a message"
    );
}

#[test]
fn check_break_lets_a_computing_place_stop() {
    let p: Place<(), String> = Place::spawn(computes).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.break_place();
    let msg = p.get_timeout(LIMIT).unwrap();
    assert!(
        msg.starts_with("stopped: ") && msg.contains("break"),
        "{msg}"
    );
    assert_eq!(p.wait_timeout(LIMIT), Some(0));
}

#[test]
fn kill_reaches_a_computing_place_at_check_break() {
    let p: Place<(), String> = Place::spawn(computes).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.kill();
    assert_eq!(p.wait(), 1);
    // The place unwinds at its next check instead of reporting a break.
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}

#[test]
fn outside_a_place_check_break_is_always_ok() {
    assert_eq!(places::check_break(), Ok(()));
}

#[test]
fn spawn_forms_lift_their_bodies_into_places() {
    // Two forms in one function: each gets an entry of its own.
    let a: Place<u64> = places::spawn!(ch: PlaceChannel<u64> => {
        let n = ch.get().unwrap();
        let _ = ch.put(n + 1);
    })
    .unwrap();
    let b: Place<u64> = places::spawn!(ch: PlaceChannel<u64> => {
        let n = ch.get().unwrap();
        let _ = ch.put(n * 2);
    })
    .unwrap();
    assert_eq!(a.put_get(1).unwrap(), 2);
    assert_eq!(b.put_get(21).unwrap(), 42);
    assert_eq!(a.wait(), 0);
    assert_eq!(b.wait(), 0);
}

/// Blocks in `get`; its guard uses a channel while the place unwinds.
#[place]
fn uses_a_channel_while_unwinding(ch: PlaceChannel<(), ()>) {
    struct Guard(PlaceChannel<u8, u8>);
    impl Drop for Guard {
        fn drop(&mut self) {
            // Runs while a kill unwinds this place: must not unwind a second time (that would
            // abort the whole process).
            let _ = self.0.get_timeout(Duration::from_millis(10));
            let _ = self.0.put(1);
            let _ = places::check_break();
        }
    }
    let (mine, _theirs) = place_channel::<u8, u8>();
    let _guard = Guard(mine);
    let _ = ch.get();
}

#[test]
fn a_killed_place_may_use_channels_in_its_destructors() {
    let p: Place<(), ()> = Place::spawn(uses_a_channel_while_unwinding).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.kill();
    assert_eq!(p.wait(), 1);
    // The process is still here, and the place's channel closed as it ended.
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}
