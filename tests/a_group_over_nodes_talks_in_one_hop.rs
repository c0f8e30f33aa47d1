//! Members of a `fork_join!` group on four real node processes send each other megabytes (a
//! ring, then an all-to-all), and none of it passes through this program: the bytes this
//! process writes (Linux's `/proc/self/io` `wchar`, which counts socket writes; relaying would
//! write every byte on to its destination node) stay far below what the members exchanged. A control shows the measure sees traffic that does pass
//! through here. One test in its own binary, so no other test's traffic is counted.

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, NodeOptions, RemoteNode, Tag};

places::node_test_entry!();

#[path = "support/written.rs"]
mod written;
use written::io_bytes;

/// Answers every buffer with its length.
#[place]
pub fn sink(ch: PlaceChannel<u64, Vec<u8>>) {
    while let Ok(v) = ch.get() {
        if ch.put(v.len() as u64).is_err() {
            return;
        }
    }
}

const MB: usize = 1 << 20;

#[test]
fn a_ring_and_an_all_to_all_among_four_nodes_pass_nothing_through_the_creator() {
    let nodes: Vec<RemoteNode> = (0..4)
        .map(|_| {
            create_place_node(
                "localhost",
                NodeOptions::for_this_test_binary().heartbeat(Duration::from_secs(2)),
            )
            .expect("start a local node")
        })
        .collect();
    // A first small group, so that whatever is paid once (entries, threads) is paid before
    // the measure starts.
    fork_join!(nodes = &nodes, 4, cg, [] -> (), { cg.barrier(); }).unwrap();

    let before = io_bytes();
    let sums = fork_join!(nodes = &nodes, 4, cg, [] -> (u32, u64, u64), {
        let (id, cnt) = (cg.id(), cg.cnt());
        let block = |from: usize, to: usize| vec![(from * 16 + to) as u8; MB];
        // Ring: 1 MiB to the next member.
        cg.send((id + 1) % cnt, block(id, (id + 1) % cnt)).unwrap();
        let prev = (id + cnt - 1) % cnt;
        let got: Vec<u8> = cg.recv(prev).unwrap();
        assert_eq!(got, block(prev, id));
        let ring = got.len() as u64;
        // All-to-all: 1 MiB to every other member.
        for to in (0..cnt).filter(|&to| to != id) {
            cg.send_tagged(to, Tag::user(1), block(id, to)).unwrap();
        }
        let mut all = 0u64;
        for from in (0..cnt).filter(|&from| from != id) {
            let got: Vec<u8> = cg.recv_tagged(from, Tag::user(1)).unwrap();
            assert_eq!(got, block(from, id), "member {id} from {from}");
            all += got.len() as u64;
        }
        cg.barrier();
        (std::process::id(), ring, all)
    })
    .unwrap();
    let through_here = io_bytes() - before;

    let moved: u64 = sums.iter().map(|s| s.1 + s.2).sum();
    assert_eq!(moved, 4 * MB as u64 + 12 * MB as u64);
    let pids: std::collections::HashSet<u32> = sums.iter().map(|s| s.0).collect();
    assert_eq!(pids.len(), 4, "one member per node process");
    assert!(
        through_here < MB as u64 / 2,
        "{through_here} bytes passed through the creator while the members exchanged {moved}"
    );

    // The control: 4 MiB sent to a place does pass through here, and the measure sees it.
    let p: places::RemotePlace<Vec<u8>, u64> = nodes[0]
        .dynamic_place(module_path!(), "sink")
        .expect("start the sink");
    let before = io_bytes();
    assert_eq!(p.put_get(vec![7u8; 4 * MB]).unwrap(), 4 * MB as u64);
    let control = io_bytes() - before;
    eprintln!("creator I/O: {through_here} bytes during a {moved}-byte exchange; {control} bytes for a 4 MiB put");
    assert!(
        control >= 4 * MB as u64,
        "the measure saw only {control} bytes of a 4 MiB message"
    );
}
