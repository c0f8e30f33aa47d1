//! `sync!` and `Select` wait on several channels, place-dead events and a timeout at once.

use std::time::Duration;

use places::prelude::*;

const LIMIT: Duration = Duration::from_secs(30);

#[place]
fn echo(ch: PlaceChannel<u32>) {
    while let Ok(n) = ch.get() {
        if ch.put(n).is_err() {
            return;
        }
    }
}

#[place]
fn ends_with_five(ch: PlaceChannel<u32>) -> i32 {
    let _ = ch.get();
    5
}

/// Waits in a select on its own channel and a channel it never gets a message on.
#[place]
fn selects_forever(ch: PlaceChannel<u32>) {
    let (other, _keep) = place_channel::<u32, u32>();
    sync! {
        recv(ch) -> _m => {},
        recv(other) -> _m => {},
    }
}

#[test]
fn sync_runs_the_arm_of_the_ready_channel() {
    let a: Place<u32> = Place::spawn(echo).unwrap();
    let b: Place<u32> = Place::spawn(echo).unwrap();
    b.put(2).unwrap();
    let mut seen = Vec::new();
    sync! {
        recv(a) -> m => seen.push(("a", m.unwrap())),
        recv(b) -> m => seen.push(("b", m.unwrap())),
        timeout(LIMIT) => seen.push(("timeout", 0)),
    }
    assert_eq!(seen, [("b", 2)]);
}

#[test]
fn sync_arms_can_share_mutable_state_and_return_a_value() {
    let a: Place<u32> = Place::spawn(echo).unwrap();
    let b: Place<u32> = Place::spawn(echo).unwrap();
    a.put(1).unwrap();
    b.put(2).unwrap();
    let mut total = 0;
    for _ in 0..2 {
        let which = sync! {
            recv(a) -> m => { total += m.unwrap(); 'a' },
            recv(b) -> m => { total += m.unwrap(); 'b' },
        };
        assert!(which == 'a' || which == 'b');
    }
    assert_eq!(total, 3);
}

#[test]
fn the_dead_arm_fires_when_a_place_ends() {
    let p: Place<u32> = Place::spawn(ends_with_five).unwrap();
    let (_idle, _idle_peer) = place_channel::<u32, u32>();
    p.put(0).unwrap();
    let code = sync! {
        recv(_idle) -> _m => -1,
        dead(p.dead_evt()) -> code => code,
        timeout(LIMIT) => -2,
    };
    assert_eq!(code, 5);
}

#[test]
fn the_timeout_arm_fires_when_nothing_is_ready() {
    let a: Place<u32> = Place::spawn(echo).unwrap();
    let fired = sync! {
        recv(a) -> _m => false,
        timeout(Duration::from_millis(20)) => true,
    };
    assert!(fired);
}

#[test]
fn a_closed_channel_is_ready_with_an_error() {
    let (a, a_peer) = place_channel::<u32, u32>();
    drop(a_peer);
    let r = sync! {
        recv(a) -> m => m,
        timeout(LIMIT) => Ok(0),
    };
    assert_eq!(r, Err(ChannelError::Closed));
}

#[test]
fn the_choice_among_ready_channels_is_fair() {
    let (a, a_peer) = place_channel::<u32, u32>();
    let (b, b_peer) = place_channel::<u32, u32>();
    for _ in 0..400 {
        a_peer.put(0).unwrap();
        b_peer.put(1).unwrap();
    }
    let mut counts = [0u32; 2];
    for _ in 0..400 {
        let m = sync! {
            recv(a) -> m => m.unwrap(),
            recv(b) -> m => m.unwrap(),
        };
        counts[m as usize] += 1;
    }
    // Both always ready: a fair choice picks each about half the time (failing here by chance
    // has a probability far below 1e-20).
    assert!(counts[0] > 100 && counts[1] > 100, "{counts:?}");
}

#[test]
fn select_serves_a_list_known_only_at_run_time() {
    let ps: Vec<Place<u32>> = (0..5).map(|_| Place::spawn(echo).unwrap()).collect();
    for (i, p) in ps.iter().enumerate() {
        p.put(i as u32 * 10).unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..ps.len() {
        let mut sel = Select::new();
        for p in &ps {
            sel.recv(p);
        }
        let ev = sel.select_timeout(LIMIT).unwrap();
        let i = ev.index();
        got.push(ev.recv(&ps[i]).unwrap());
    }
    got.sort();
    assert_eq!(got, [0, 10, 20, 30, 40]);
    let mut sel = Select::new();
    for p in &ps {
        sel.recv(p);
    }
    let short = Duration::from_millis(10);
    assert!(matches!(
        sel.select_timeout(short),
        Err(ChannelError::Timeout(_))
    ));
}

#[test]
fn kill_ends_a_place_blocked_in_a_select() {
    let p: Place<u32> = Place::spawn(selects_forever).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    p.kill();
    assert_eq!(p.wait(), 1);
    assert_eq!(p.get_timeout(LIMIT), Err(ChannelError::Closed));
}
