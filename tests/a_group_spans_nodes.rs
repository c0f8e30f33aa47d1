//! A communicator group whose members are places on three different nodes (real node processes
//! on loopback), made with `Comm::invitations`: barriers, a typed ring exchange, a wrong type
//! reported with both names, and a member whose node dies failing the others instead of
//! leaving them waiting. (Between nodes the members' channels still pass through this program;
//! direct node-to-node links are to come.)

use std::time::Duration;

use places::prelude::*;
use places::{create_place_node, CommError, Invitation, NodeOptions, RemoteNode, RemotePlace};

const LIMIT: Duration = Duration::from_secs(30);

places::node_test_entry!();

fn nodes(n: usize) -> Vec<RemoteNode> {
    (0..n)
        .map(|_| {
            create_place_node(
                "localhost",
                NodeOptions::for_this_test_binary().heartbeat(Duration::from_millis(500)),
            )
            .expect("start a local node")
        })
        .collect()
}

/// Joins the group it is invited to, then: barrier, a ring of ranks, a deliberate type mix-up
/// from member 0 to member 1, a last barrier; reports what it saw.
#[place]
pub fn member(ch: PlaceChannel<String, Invitation>) {
    let Ok(invitation) = ch.get() else { return };
    let cg = invitation.join();
    let (id, cnt) = (cg.id(), cg.cnt());
    let report = (|| -> Result<String, CommError> {
        cg.try_barrier()?;
        let next = (id + 1) % cnt;
        let prev = (id + cnt - 1) % cnt;
        cg.send(next, id as u64 * 10)?;
        let got: u64 = cg.recv(prev)?;
        let mixup = match id {
            0 => {
                cg.send(1, "not a number".to_string())?;
                String::new()
            }
            1 => match cg.recv::<u64>(0) {
                Err(e) => format!(" mixup: {e}"),
                Ok(v) => format!(" mixup: got {v}"),
            },
            _ => String::new(),
        };
        cg.try_barrier()?;
        Ok(format!("member {id} of {cnt} got {got}{mixup}"))
    })();
    let _ = ch.put(report.unwrap_or_else(|e| format!("member {id} failed: {e}")));
}

/// Joins, then waits at a barrier that one member never reaches; reports how it ended.
#[place]
pub fn waits_at_a_barrier(ch: PlaceChannel<String, Invitation>) {
    let Ok(invitation) = ch.get() else { return };
    let cg = invitation.join();
    if cg.id() == 2 {
        // This member's node is killed by the test; it never arrives.
        let _ = ch.put("waiting to be killed".to_string());
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let _ = places::check_break();
        }
    }
    let _ = ch.put("ready".to_string());
    let outcome = match cg.try_barrier() {
        Ok(()) => "the barrier passed".to_string(),
        Err(e) => format!("the barrier failed: {e}"),
    };
    let _ = ch.put(outcome);
}

#[test]
fn a_group_of_places_on_three_nodes_exchanges_typed_messages() {
    let ns = nodes(3);
    let members: Vec<RemotePlace<Invitation, String>> = ns
        .iter()
        .map(|n| n.dynamic_place(module_path!(), "member").unwrap())
        .collect();
    for (m, inv) in members.iter().zip(places::Comm::invitations(3)) {
        m.put(inv).unwrap();
    }
    let reports: Vec<String> = members
        .iter()
        .map(|m| m.get_timeout(LIMIT).unwrap())
        .collect();
    assert_eq!(reports[0], "member 0 of 3 got 20");
    assert_eq!(reports[2], "member 2 of 3 got 10");
    assert!(
        reports[1].starts_with("member 1 of 3 got 0 mixup: member 0 sent a `alloc::string::String` where a `u64` was expected"),
        "{}",
        reports[1]
    );
}

#[test]
fn a_member_whose_node_dies_fails_the_others_barrier() {
    let ns = nodes(3);
    let members: Vec<RemotePlace<Invitation, String>> = ns
        .iter()
        .map(|n| {
            n.dynamic_place(module_path!(), "waits_at_a_barrier")
                .unwrap()
        })
        .collect();
    for (m, inv) in members.iter().zip(places::Comm::invitations(3)) {
        m.put(inv).unwrap();
    }
    assert_eq!(
        members[2].get_timeout(LIMIT).unwrap(),
        "waiting to be killed"
    );
    for m in &members[..2] {
        assert_eq!(m.get_timeout(LIMIT).unwrap(), "ready");
    }
    let pid = ns[2].pid().unwrap();
    let dead = ns[2].addr();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    // Member 1 waits for member 0's release; member 0 gathers and sees member 2 gone. Member 0
    // then ends its part (its place returns), which releases member 1 with an error too.
    // The members' channels link their nodes directly: the broken link names the node (a
    // channel relayed through this program would only say the member is gone).
    let zero = members[0].get_timeout(LIMIT).unwrap();
    assert!(
        zero.starts_with("the barrier failed: member 2 of the group is gone")
            || (zero.starts_with("the barrier failed: the link to member 2 of the group failed")
                && zero.contains(&dead)),
        "{zero}"
    );
    let one = members[1].get_timeout(LIMIT).unwrap();
    assert!(one.starts_with("the barrier failed: member"), "{one}");
}
