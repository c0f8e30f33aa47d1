//! `define_remote_server!` / `define_named_remote_server!`: the same stubs work against a local
//! place, a remote place and named-place connections; a dead server fails calls instead of
//! hanging; deadlines hold; bodies can `return`, use `?` and log to the parent.

use std::time::Duration;

use places::prelude::*;
use places::{
    connect_to_named_place, create_place_node, define_named_remote_server, define_remote_server,
    supervise_place_at, LogRecord, NodeOptions, PlaceOptions, RemoteNode, RemotePlace, Routed,
    RpcError, RpcRequest, RpcResponse, Severity,
};

places::node_test_entry!();

fn node() -> RemoteNode {
    create_place_node("localhost", NodeOptions::for_this_test_binary()).expect("start a local node")
}

define_remote_server! {
    pub calc {
        state memory: Vec<i64> = Vec::new();
        state calls: u64 = 0;
        rpc fn push(x: i64) -> usize {
            calls += 1;
            memory.push(x);
            memory.len()
        }
        rpc fn checked_div(a: i64, b: i64) -> Result<i64, String> {
            calls += 1;
            if b == 0 {
                return Err("division by zero".to_string());
            }
            let q = a.checked_div(b).ok_or("overflow")?;
            Ok(q)
        }
        rpc fn sum() -> i64 {
            memory.iter().sum()
        }
        rpc fn slow(ms: u64) -> u64 {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        }
        rpc fn noisy(word: String) -> usize {
            places::log_to_parent(format!("noisy got {word}"), Severity::Warning);
            word.len()
        }
        cast fn clear() {
            memory.clear();
        }
    }
}

define_named_remote_server! {
    pub registry {
        state names: Vec<String> = Vec::new();
        rpc fn register(name: String) -> usize {
            names.push(name);
            names.len()
        }
        rpc fn count() -> usize {
            names.len()
        }
    }
}

type Calc = Place<CalcRequest, CalcResponse>;

#[test]
fn a_local_server_keeps_its_state_between_calls() {
    let server: Calc = Place::spawn(make_calc).unwrap();
    assert_eq!(calc_push(&server, 4).unwrap(), 1);
    assert_eq!(calc_push(&server, 5).unwrap(), 2);
    assert_eq!(calc_sum(&server).unwrap(), 9);
    calc_clear(&server).unwrap();
    assert_eq!(calc_sum(&server).unwrap(), 0);
    let client = CalcClient::new(&server);
    assert_eq!(client.push(7).unwrap(), 1);
    assert_eq!(client.sum().unwrap(), 7);
}

#[test]
fn return_and_question_mark_end_the_call_not_the_server() {
    let server: Calc = Place::spawn(make_calc).unwrap();
    assert_eq!(
        calc_checked_div(&server, 7, 0).unwrap(),
        Err("division by zero".to_string())
    );
    assert_eq!(
        calc_checked_div(&server, i64::MIN, -1).unwrap(),
        Err("overflow".to_string())
    );
    assert_eq!(calc_checked_div(&server, 7, 2).unwrap(), Ok(3));
}

#[test]
fn log_to_parent_reaches_the_caller_before_the_reply() {
    let server: Calc = Place::spawn(make_calc).unwrap();
    // The stub shows the log on stderr and returns the reply.
    assert_eq!(calc_noisy(&server, "abc".into()).unwrap(), 3);
    // By hand: the log record (id 0) comes first on the channel, then the reply with the
    // call's id.
    server
        .put(RpcRequest {
            id: 77,
            call: CalcCall::Noisy {
                word: "hello".into(),
            },
        })
        .unwrap();
    match server.get().unwrap() {
        RpcResponse {
            id: 0,
            reply: CalcAnswer::Log(LogRecord {
                severity, message, ..
            }),
        } => {
            assert_eq!(severity, Severity::Warning);
            assert_eq!(message, "noisy got hello");
        }
        _ => panic!("expected the log record first"),
    }
    assert!(matches!(
        server.get().unwrap(),
        RpcResponse {
            id: 77,
            reply: CalcAnswer::Noisy(5)
        }
    ));
}

#[test]
fn a_deadline_turns_a_slow_call_into_an_error() {
    let server: Calc = Place::spawn(make_calc).unwrap();
    let client = CalcClient::new(&server).with_deadline(Duration::from_millis(50));
    let err = client.slow(1000).unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Deadline {
                call: "calc::slow",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_reply_that_comes_after_its_call_gave_up_is_dropped() {
    let n = node();
    let remote: RemotePlace<CalcRequest, CalcResponse> =
        n.dynamic_place(module_path!(), "make_calc").unwrap();
    let local: Calc = Place::spawn(make_calc).unwrap();
    for server in [local.channel(), remote.channel()] {
        let impatient = CalcClient::new(server).with_deadline(Duration::from_millis(100));
        assert!(matches!(
            impatient.slow(2000),
            Err(RpcError::Deadline { .. })
        ));
        // The late reply (2000) arrives while this call waits: it is not taken for this one.
        assert_eq!(calc_slow(server, 1).unwrap(), 1);
        assert_eq!(calc_push(server, 5).unwrap(), 1);
        assert_eq!(calc_sum(server).unwrap(), 5);
    }
}

#[test]
fn threads_sharing_one_server_get_their_own_replies() {
    let n = node();
    let remote: RemotePlace<CalcRequest, CalcResponse> =
        n.dynamic_place(module_path!(), "make_calc").unwrap();
    let local: Calc = Place::spawn(make_calc).unwrap();
    for server in [local.channel(), remote.channel()] {
        std::thread::scope(|s| {
            for t in 0..4u64 {
                s.spawn(move || {
                    let client = CalcClient::new(server);
                    for i in 0..200u64 {
                        let ms = (t * 1000 + i) % 3;
                        assert_eq!(client.slow(ms).unwrap(), ms, "thread {t} call {i}");
                    }
                });
            }
        });
    }
}

#[test]
fn a_killed_or_ended_server_fails_calls_instead_of_hanging() {
    let server: Calc = Place::spawn(make_calc).unwrap();
    assert_eq!(calc_push(&server, 1).unwrap(), 1);
    // A call that is pending when the server dies.
    let pending = std::thread::spawn({
        let s: Calc = Place::spawn(make_calc).unwrap();
        move || {
            let r = calc_slow(&s, 300);
            (r, s)
        }
    });
    server.kill();
    assert!(matches!(calc_push(&server, 2), Err(RpcError::Channel(_))));
    let (r, s) = pending.join().unwrap();
    assert_eq!(r.unwrap(), 300);
    s.kill();
    assert!(matches!(calc_sum(&s), Err(RpcError::Channel(_))));
}

#[test]
fn the_same_stubs_call_a_server_on_a_node() {
    let n = node();
    let remote: RemotePlace<CalcRequest, CalcResponse> =
        n.dynamic_place(module_path!(), "make_calc").unwrap();
    assert_eq!(calc_push(&remote, 10).unwrap(), 1);
    assert_eq!(calc_push(&remote, 20).unwrap(), 2);
    assert_eq!(calc_sum(&remote).unwrap(), 30);
    assert_eq!(CalcClient::new(&remote).checked_div(9, 3).unwrap(), Ok(3));
    // The node dies: calls fail with an error naming it.
    let pid = n.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .unwrap()
        .success());
    match calc_sum(&remote) {
        Err(RpcError::Channel(ChannelError::Lost(reason))) => {
            assert!(reason.contains(n.name()), "{reason}")
        }
        other => panic!("expected a lost node, got {other:?}"),
    }
}

#[test]
fn a_named_server_answers_each_connection_on_its_own() {
    let n = node();
    let _server: RemotePlace<Routed<RegistryRequest, RegistryResponse>, RegistryResponse> =
        supervise_place_at(
            &n,
            module_path!(),
            "make_registry",
            PlaceOptions::new().named("registry"),
        )
        .unwrap();
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let conn = connect_to_named_place::<RegistryRequest, RegistryResponse>(&n, "registry")
                .unwrap();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for i in 0..25 {
                    seen.push(registry_register(&conn, format!("c{k}-{i}")).unwrap());
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<usize> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    // Every registration got its own answer: the positions 1..=100, each once.
    assert_eq!(all, (1..=100).collect::<Vec<_>>());
    let conn = connect_to_named_place::<RegistryRequest, RegistryResponse>(&n, "registry").unwrap();
    assert_eq!(RegistryClient::new(&conn).count().unwrap(), 100);
}
