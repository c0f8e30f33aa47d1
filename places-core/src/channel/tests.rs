use super::*;
use std::time::Duration;

#[test]
fn messages_arrive_in_order_both_ways() {
    let (a, b) = raw_pair::<u32, String>();
    for i in 0..100 {
        a.put(i).unwrap();
    }
    for i in 0..100 {
        assert_eq!(b.get().unwrap(), i);
        b.put(i.to_string()).unwrap();
    }
    for i in 0..100 {
        assert_eq!(a.get().unwrap(), i.to_string());
    }
}

#[test]
fn get_on_a_dropped_peer_fails_after_draining() {
    let (a, b) = raw_pair::<u8, u8>();
    b.put(1).unwrap();
    drop(b);
    assert_eq!(a.get(), Ok(1));
    assert_eq!(a.get(), Err(ChannelError::Closed));
    assert_eq!(a.put(2), Err(ChannelError::Closed));
    assert_eq!(a.try_get(), Err(ChannelError::Closed));
}

#[test]
fn try_get_and_timeout() {
    let (a, b) = raw_pair::<u8, u8>();
    assert_eq!(a.try_get(), Err(ChannelError::Empty));
    let t = Duration::from_millis(20);
    assert_eq!(a.get_timeout(t), Err(ChannelError::Timeout(t)));
    b.put(5).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a.get_timeout(t), Ok(5));
    assert!(a.is_empty());
}

#[test]
fn get_wakes_when_the_peer_is_dropped_by_another_thread() {
    let (a, b) = raw_pair::<u8, u8>();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
    });
    assert_eq!(
        a.get_timeout(Duration::from_secs(10)),
        Err(ChannelError::Closed)
    );
    t.join().unwrap();
}

#[test]
fn async_recv_sees_messages_and_closure() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (a, b) = raw_pair::<u32, u32>();
    let t = std::thread::spawn(move || {
        for i in 0..1000 {
            b.put(i).unwrap();
        }
    });
    rt.block_on(async {
        for i in 0..1000 {
            let v = tokio::time::timeout(Duration::from_secs(10), a.recv())
                .await
                .expect("recv timed out")
                .unwrap();
            assert_eq!(v, i);
        }
        let end = tokio::time::timeout(Duration::from_secs(10), a.recv())
            .await
            .expect("recv after close timed out");
        assert_eq!(end, Err(ChannelError::Closed));
    });
    t.join().unwrap();
}

#[test]
fn serde_refuses_a_channel_outside_a_transport() {
    let (a, _b) = raw_pair::<u8, u8>();
    let err = crate::codec::encode(&a).unwrap_err();
    assert!(err.to_string().contains("place channel"), "{err}");
}
