//! A pair made in this program whose two ends go to places on nodes X and Y: once the second
//! end leaves, X links to Y directly and the two talk in one hop. The megabytes they then
//! exchange pass through neither this program's writes (`/proc/self/io`'s `wchar`, which
//! counts socket writes) nor its relays. What was on its way while the pair moved (sent by X
//! before, or put here on the end before it left) arrives first, in order. A node that does
//! not hand ends over keeps the pair relayed here (the control: the measure sees that
//! traffic); so does a `sender()` of either end kept here (it still sends the old way, which
//! would then never end); a node that dies after the move fails the channel at the other,
//! naming it.
//! Its own file, so no other test's traffic is counted.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, RemotePlace};

places::node_test_entry!();

const LIMIT: Duration = Duration::from_secs(60);
const MB: usize = 1 << 20;

/// The tests of this file take turns: the measure counts every write of the process.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn node_with(hand_off: bool) -> RemoteNode {
    create_place_node(
        "localhost",
        NodeOptions::for_this_test_binary()
            .heartbeat(Duration::from_secs(2))
            .hand_off_channel_ends(hand_off),
    )
    .expect("start a local node")
}

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

/// The end that travels.
type End = PlaceChannel<Vec<u8>, Vec<u8>>;

/// Takes a channel end, then answers every buffer on it with the buffer reversed.
#[place]
pub fn reverser(ch: PlaceChannel<(), End>) {
    let Ok(end) = ch.get() else { return };
    while let Ok(mut v) = end.get() {
        v.reverse();
        if end.put(v).is_err() {
            return;
        }
    }
}

/// What `talker` is told: first the end (and how many buffers to send on it at once, before
/// its peer goes on), then rounds of work.
#[derive(serde::Serialize, serde::Deserialize)]
pub enum Talk {
    /// The end, and how many buffers to send on it at once.
    End(End, usize),
    /// Expect first the buffers the creator put on the peer and the answers to the early
    /// buffers, then make round trips; report.
    Go {
        /// How many buffers the creator put on the peer before it went on.
        from_creator: usize,
        /// How many early buffers were sent (their answers come next).
        early: usize,
        /// How many round trips to make then.
        rounds: usize,
        /// Of how many bytes.
        len: usize,
    },
    /// Wait for the channel to end; report how.
    WaitForTheEnd,
}

/// Takes an end (sending `early` buffers `[i, i+1, i+2]` at once), then does what it is told
/// on it, reporting each time.
#[place]
pub fn talker(ch: PlaceChannel<String, Talk>) {
    let Ok(Talk::End(end, early)) = ch.get() else {
        return;
    };
    for i in 0..early as u8 {
        if end.put(vec![i, i + 1, i + 2]).is_err() {
            return;
        }
    }
    if ch.put("sent".into()).is_err() {
        return;
    }
    while let Ok(talk) = ch.get() {
        let report = match talk {
            Talk::End(..) => "one end is enough".to_owned(),
            Talk::Go {
                from_creator,
                early,
                rounds,
                len,
            } => go(&end, from_creator, early, rounds, len)
                .unwrap_or_else(|e| format!("failed: {e}")),
            Talk::WaitForTheEnd => match end.get_timeout(LIMIT) {
                Ok(v) => format!("got {v:?}"),
                Err(e) => format!("ended: {e}"),
            },
        };
        if ch.put(report).is_err() {
            return;
        }
    }
}

fn go(
    end: &End,
    from_creator: usize,
    early: usize,
    rounds: usize,
    len: usize,
) -> Result<String, String> {
    let next = || end.get_timeout(LIMIT).map_err(|e| e.to_string());
    for k in 0..from_creator {
        let v = next()?;
        if v != vec![200 + k as u8] {
            return Err(format!("the creator's buffer {k} is {v:?}"));
        }
    }
    for i in 0..early as u8 {
        let v = next()?;
        if v != vec![i + 2, i + 1, i] {
            return Err(format!("the answer to early buffer {i} is {v:?}"));
        }
    }
    for i in 0..rounds {
        let v: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        let mut back = end.put_get(v.clone()).map_err(|e| e.to_string())?;
        back.reverse();
        if back != v {
            return Err(format!("answer {i} is wrong"));
        }
    }
    Ok(format!("{rounds} round trips"))
}

/// A pair made here, one end at a `talker` on `x` (which sends `early` buffers at once), the
/// other, after `from_creator` buffers put on it here, at a `reverser` on `y`.
fn spread(
    x: &RemoteNode,
    y: &RemoteNode,
    early: usize,
    from_creator: usize,
) -> (RemotePlace<Talk, String>, RemotePlace<End, ()>) {
    let (mine, theirs) = places::place_channel::<Vec<u8>, Vec<u8>>();
    spread_pair(x, y, early, from_creator, mine, theirs)
}

/// [`spread`], for a pair made by the caller.
fn spread_pair(
    x: &RemoteNode,
    y: &RemoteNode,
    early: usize,
    from_creator: usize,
    mine: End,
    theirs: End,
) -> (RemotePlace<Talk, String>, RemotePlace<End, ()>) {
    let talker: RemotePlace<Talk, String> = x.dynamic_place(module_path!(), "talker").unwrap();
    let reverser: RemotePlace<End, ()> = y.dynamic_place(module_path!(), "reverser").unwrap();
    talker.put(Talk::End(theirs, early)).unwrap();
    assert_eq!(talker.get_timeout(LIMIT).unwrap(), "sent");
    // The early buffers wait here before the end goes on.
    let deadline = std::time::Instant::now() + LIMIT;
    while mine.len() < early {
        assert!(
            std::time::Instant::now() < deadline,
            "the early buffers never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for k in 0..from_creator {
        mine.put(vec![200 + k as u8]).unwrap();
    }
    reverser.put(mine).unwrap();
    (talker, reverser)
}

fn go_talk(
    talker: &RemotePlace<Talk, String>,
    from_creator: usize,
    early: usize,
    rounds: usize,
    len: usize,
) -> String {
    talker
        .put(Talk::Go {
            from_creator,
            early,
            rounds,
            len,
        })
        .unwrap();
    talker.get_timeout(LIMIT).unwrap()
}

#[test]
fn a_pair_made_here_and_sent_to_two_nodes_links_them_in_one_hop() {
    let _turn = serial();
    let (x, y) = (node_with(true), node_with(true));
    let (talker, _reverser) = spread(&x, &y, 0, 0);
    // A first round trip pays what is paid once (the direct connection, threads).
    assert_eq!(go_talk(&talker, 0, 0, 1, 10), "1 round trips");
    let before = io_bytes();
    assert_eq!(go_talk(&talker, 0, 0, 16, MB), "16 round trips");
    let through_here = io_bytes() - before;
    // 32 MiB went between X and Y; relayed here, all of it would be written here.
    assert!(
        through_here < MB as u64 / 2,
        "{through_here} bytes went through this program"
    );
}

#[test]
fn what_was_on_its_way_when_the_pair_moved_arrives_first_in_order() {
    let _turn = serial();
    let (x, y) = (node_with(true), node_with(true));
    for _ in 0..3 {
        let (talker, _reverser) = spread(&x, &y, 3, 2);
        assert_eq!(go_talk(&talker, 2, 3, 8, 10_000), "8 round trips");
    }
}

#[test]
fn a_node_that_does_not_hand_ends_over_keeps_the_pair_relayed_here() {
    let _turn = serial();
    let (x, y) = (node_with(false), node_with(true));
    let (talker, _reverser) = spread(&x, &y, 0, 0);
    assert_eq!(go_talk(&talker, 0, 0, 1, 10), "1 round trips");
    let before = io_bytes();
    assert_eq!(go_talk(&talker, 0, 0, 4, 100_000), "4 round trips");
    let through_here = io_bytes() - before;
    assert!(through_here >= 800_000, "{through_here}");
}

#[test]
fn a_node_that_dies_after_the_move_fails_the_channel_naming_it() {
    let _turn = serial();
    let (x, y) = (node_with(true), node_with(true));
    let (talker, _reverser) = spread(&x, &y, 0, 0);
    assert_eq!(go_talk(&talker, 0, 0, 2, 10), "2 round trips");
    talker.put(Talk::WaitForTheEnd).unwrap();
    let y_addr = y.addr();
    let pid = y.pid().expect("a local node has a pid");
    // SAFETY: a plain kill(2) of the node's own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let report = talker.get_timeout(LIMIT).unwrap();
    assert!(report.starts_with("ended: "), "{report}");
    assert!(
        report.contains(&y_addr),
        "the error names {y_addr}: {report}"
    );
    drop(y);
}

#[test]
fn a_sender_of_either_end_kept_here_keeps_the_pair_relayed_and_working() {
    let _turn = serial();
    let (x, y) = (node_with(true), node_with(true));
    for keep_first in [true, false] {
        let (mine, theirs) = places::place_channel::<Vec<u8>, Vec<u8>>();
        // A logging callback, say.
        let kept = if keep_first {
            theirs.sender()
        } else {
            mine.sender()
        };
        let (talker, _reverser) = spread_pair(&x, &y, 0, 0, mine, theirs);
        assert_eq!(go_talk(&talker, 0, 0, 1, 10), "1 round trips");
        let before = io_bytes();
        assert_eq!(go_talk(&talker, 0, 0, 4, 100_000), "4 round trips");
        let through_here = io_bytes() - before;
        assert!(through_here >= 800_000, "{through_here}");
        drop(kept);
    }
}
