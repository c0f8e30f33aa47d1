//! Groups whose members link to each other directly over loopback TCP (`places::net::mesh`):
//! they form, carry typed messages and barriers, refuse a stranger that does not know the
//! group's secret while still forming with the real members, and report a member that never
//! comes instead of waiting forever.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use places::net::mesh::{form, MeshListener};
use places::{Comm, CommError, Cookie, NetError};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Forms a group of `cnt` members, one thread each, running `body`; returns their results.
fn group<R: Send + 'static>(cnt: usize, body: fn(Comm) -> R) -> Vec<Result<R, NetError>> {
    let secret = Cookie::random().unwrap();
    let listeners: Vec<MeshListener> = (0..cnt)
        .map(|_| MeshListener::bind(LOOPBACK).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(MeshListener::addr).collect();
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(rank, l)| {
            let (secret, addrs) = (secret.clone(), addrs.clone());
            thread::spawn(move || form(rank, &secret, l, &addrs, Duration::from_secs(30)).map(body))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn members_exchange_typed_messages_and_meet_at_barriers() {
    let results = group(4, |cg| {
        let (id, cnt) = (cg.id(), cg.cnt());
        cg.barrier();
        cg.send((id + 1) % cnt, format!("from {id}")).unwrap();
        let got: String = cg.recv((id + cnt - 1) % cnt).unwrap();
        cg.barrier();
        got
    });
    let got: Vec<String> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, ["from 3", "from 0", "from 1", "from 2"]);
}

#[test]
fn a_wrong_type_is_an_error_naming_both_types() {
    let results = group(2, |cg| {
        if cg.id() == 0 {
            cg.send(1, "text".to_string()).unwrap();
            cg.barrier();
            String::new()
        } else {
            let e = cg.recv::<u64>(0).unwrap_err();
            cg.barrier();
            assert!(
                matches!(e, CommError::TypeMismatch { rank: 0, .. }),
                "{e:?}"
            );
            e.to_string()
        }
    });
    let text = results.into_iter().nth(1).unwrap().unwrap();
    assert!(text.contains("u64") && text.contains("String"), "{text}");
}

#[test]
fn a_stranger_without_the_secret_is_refused_and_the_group_still_forms() {
    let secret = Cookie::random().unwrap();
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs = vec![l0.addr(), l1.addr()];
    // The stranger greets member 0 as member 1 would, then cannot prove the secret: member 0
    // proves it first and then waits for the stranger's proof, which is zeros.
    let mut stranger = TcpStream::connect(addrs[0]).unwrap();
    let mut hello = b"PLMESH\0\x02".to_vec();
    hello.extend_from_slice(&1u32.to_le_bytes());
    hello.extend_from_slice(&2u32.to_le_bytes());
    hello.extend_from_slice(&[0u8; 32]);
    stranger.write_all(&hello).unwrap();
    let member0 = {
        let (secret, addrs) = (secret.clone(), addrs.clone());
        thread::spawn(move || form(0, &secret, l0, &addrs, Duration::from_secs(30)))
    };
    let mut reply = [0u8; 64];
    stranger.read_exact(&mut reply).unwrap();
    stranger.write_all(&[0u8; 32]).unwrap();
    // Member 0 closes the stranger's connection...
    stranger
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(stranger.read_to_end(&mut rest).unwrap_or(0), 0);
    // ...and links with the real member 1.
    let member1 = thread::spawn(move || form(1, &secret, l1, &addrs, Duration::from_secs(30)));
    let (c0, c1) = (
        member0.join().unwrap().unwrap(),
        member1.join().unwrap().unwrap(),
    );
    c1.send(0, 5u8).unwrap();
    assert_eq!(c0.recv::<u8>(1).unwrap(), 5);
}

#[test]
fn silent_and_trickling_strangers_do_not_hold_up_the_real_members() {
    let secret = Cookie::random().unwrap();
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs = vec![l0.addr(), l1.addr()];
    // Four strangers reach member 0 before member 1 does: two say nothing, two send their
    // greeting a byte every 2 s. Each may hold its connection for 10 s; one after another
    // they would hold member 0 for 40 s, past the group's 25 s to form.
    let mut strangers: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(addrs[0]).unwrap())
        .collect();
    let trickle: Vec<TcpStream> = strangers.drain(2..).collect();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let trickler = thread::spawn(move || {
        let mut trickle = trickle;
        // A greeting as member 1's, a byte at a time, until the test is over (it holds the
        // connections open until then).
        let mut hello = b"PLMESH\0\x02".to_vec();
        hello.extend_from_slice(&1u32.to_le_bytes());
        hello.extend_from_slice(&2u32.to_le_bytes());
        hello.extend_from_slice(&[0u8; 32]);
        for b in hello {
            for s in &mut trickle {
                let _ = s.write_all(&[b]);
            }
            if stop_rx.recv_timeout(Duration::from_secs(2)).is_ok() {
                return;
            }
        }
        let _ = stop_rx.recv_timeout(Duration::from_secs(120));
    });
    let limit = Duration::from_secs(25);
    let member0 = {
        let (secret, addrs) = (secret.clone(), addrs.clone());
        thread::spawn(move || form(0, &secret, l0, &addrs, limit))
    };
    let member1 = thread::spawn(move || form(1, &secret, l1, &addrs, limit));
    let (c0, c1) = (
        member0.join().unwrap().expect("member 0 forms"),
        member1.join().unwrap().expect("member 1 forms"),
    );
    c1.send(0, 6u8).unwrap();
    assert_eq!(c0.recv::<u8>(1).unwrap(), 6);
    let _ = stop_tx.send(());
    trickler.join().unwrap();
    drop(strangers);
}

#[test]
fn a_member_that_knows_another_secret_cannot_join() {
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs = vec![l0.addr(), l1.addr()];
    let a = addrs.clone();
    let member0 = thread::spawn(move || {
        form(
            0,
            &Cookie::random().unwrap(),
            l0,
            &a,
            Duration::from_secs(3),
        )
    });
    let err = form(
        1,
        &Cookie::random().unwrap(),
        l1,
        &addrs,
        Duration::from_secs(30),
    )
    .unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    let err0 = member0.join().unwrap().unwrap_err();
    assert!(
        err0.to_string().contains("members 1 did not connect"),
        "{err0}"
    );
}

#[test]
fn a_member_that_never_comes_is_named_after_the_timeout() {
    let l0 = MeshListener::bind(LOOPBACK).unwrap();
    let l1 = MeshListener::bind(LOOPBACK).unwrap();
    let addrs = vec![l0.addr(), l1.addr()];
    let err = form(
        0,
        &Cookie::random().unwrap(),
        l0,
        &addrs,
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("members 1 did not connect"),
        "{err}"
    );
    drop(l1);
}

#[test]
fn a_member_that_ends_is_gone_for_the_others_after_its_last_messages() {
    let results = group(2, |cg| {
        if cg.id() == 1 {
            for i in 0..10u32 {
                cg.send(0, i).unwrap();
            }
            return Vec::new();
        }
        let mut got = Vec::new();
        loop {
            match cg.recv::<u32>(1) {
                Ok(v) => got.push(v),
                Err(CommError::MemberGone { rank: 1 }) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(results[0].as_ref().unwrap(), &(0..10).collect::<Vec<u32>>());
}
