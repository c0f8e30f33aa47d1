//! The transport's rules, checked on a link that records what it would send: credit stays
//! within its window while a put waits, closes never leave ids behind, channels inside messages
//! cost credit, and tearing down a chain of channels inside messages takes no deep recursion.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use places_core::codec::{Body, CODEC_VERSION};
use places_core::transport::{ChannelTable, Control, Endpoint, Link, LinkRef, Settings, Window};
use places_core::{remote_channel, ChannelError, PlaceChannel};

/// Counts live heap bytes and reallocations.
struct Counting;
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static REALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: as the caller promised for `alloc`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as the caller promised for `dealloc`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED.fetch_add(n, Ordering::Relaxed);
        ALLOCATED.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as the caller promised for `realloc`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A link that sends nothing anywhere and remembers the control frames it was given.
struct FakeLink {
    settings: Settings,
    table: ChannelTable,
    next: AtomicU64,
    controls: Mutex<Vec<(u64, Control)>>,
    sent: AtomicU64,
}

impl Link for FakeLink {
    fn peer(&self) -> &str {
        "fake"
    }
    fn settings(&self) -> Settings {
        self.settings
    }
    fn peer_settings(&self) -> Settings {
        self.settings
    }
    fn table(&self) -> &ChannelTable {
        &self.table
    }
    fn next_id(&self) -> u64 {
        self.next.fetch_add(2, Ordering::Relaxed)
    }
    fn send_message(&self, _: u64, _: u8, _: &[u64], _: &[u8]) -> Result<(), ChannelError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn send_control(&self, id: u64, c: Control) {
        self.controls.lock().unwrap().push((id, c));
    }
    fn lost(&self) -> Option<String> {
        None
    }
}

fn link(window: Window, max_message: u64) -> (Arc<FakeLink>, LinkRef) {
    let l = Arc::new(FakeLink {
        settings: Settings {
            window,
            max_message,
        },
        table: ChannelTable::new(),
        next: AtomicU64::new(1001),
        controls: Mutex::new(Vec::new()),
        sent: AtomicU64::new(0),
    });
    (l.clone(), l)
}

/// The latest message limit this side granted the peer on `id`.
fn granted(l: &FakeLink, id: u64, initial: u64) -> u64 {
    l.controls
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(i, c)| match c {
            Control::Credit { messages, .. } if *i == id => Some(*messages),
            _ => None,
        })
        .max()
        .unwrap_or(initial)
}

#[test]
fn a_put_that_waits_lets_the_peer_send_one_more_window_not_more() {
    let w = Window::new(1 << 20, 4);
    let (fake, l) = link(w, 1 << 30);
    let ep = Endpoint::new(l.clone(), 1, w, w);
    l.table().register(ep.clone());
    let ch: PlaceChannel<u64, u64> = remote_channel(ep.clone());
    for i in 0..4 {
        ch.put(i).unwrap();
    }
    let ch = Arc::new(ch);
    let putter = {
        let ch = ch.clone();
        // Waits for credit for good: nobody grants any.
        std::thread::spawn(move || ch.put(99))
    };
    // The peer sends whenever this side has granted it credit; nothing is taken here.
    let mut arrived = 0u64;
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        if arrived < granted(&fake, 1, w.messages) {
            let mut m = l
                .table()
                .begin(&l, 1, CODEC_VERSION, vec![], 8)
                .expect("the receiver refused a sender that stayed within its credit");
            m.body_mut().extend_from_slice(&[0; 8]);
            l.table().complete(m);
            arrived += 1;
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(!putter.is_finished());
    assert!(
        arrived <= 2 * w.messages,
        "{arrived} unread messages queued with a window of {}",
        w.messages
    );
    assert_eq!(ch.len() as u64, arrived);
}

#[test]
fn a_close_at_the_same_time_as_the_peers_leaves_no_id_behind() {
    let (_fake, l) = link(Window::DEFAULT, 1 << 30);
    for i in 0..2000u64 {
        let id = 2 * i + 1;
        let ep = Endpoint::new(l.clone(), id, Window::DEFAULT, Window::DEFAULT);
        l.table().register(ep.clone());
        let b = Arc::new(Barrier::new(2));
        let (b2, l2) = (b.clone(), l.clone());
        let t = std::thread::spawn(move || {
            b2.wait();
            l2.table().peer_close(id);
        });
        b.wait();
        ep.close();
        t.join().unwrap();
        assert!(!l.table().is_known(id), "id {id} stayed after both closes");
    }
}

#[test]
fn a_refused_put_carrying_a_channel_leaves_no_id_behind() {
    let (fake, l) = link(Window::DEFAULT, 64);
    let ep = Endpoint::new(l.clone(), 1, Window::DEFAULT, Window::DEFAULT);
    l.table().register(ep.clone());
    let ch: PlaceChannel<(PlaceChannel<u8, u8>, Vec<u8>), u8> = remote_channel(ep);
    let (end, kept) = places_core::place_channel::<u8, u8>();
    let err = ch.put((end, vec![0; 1000])).unwrap_err();
    assert!(matches!(err, ChannelError::Unsendable(_)), "{err:?}");
    // The end that was inside closes, and the id it had on the link is forgotten: the peer
    // never heard of it, so it is told nothing.
    assert_eq!(
        kept.get_timeout(Duration::from_secs(10)),
        Err(ChannelError::Closed)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while l.table().is_known(1001) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!l.table().is_known(1001), "the id stayed as a tombstone");
    assert_eq!(fake.sent.load(Ordering::Relaxed), 0);
    assert!(!fake
        .controls
        .lock()
        .unwrap()
        .iter()
        .any(|(i, c)| *i == 1001 && *c == Control::Close));
}

#[test]
fn channels_inside_messages_cost_credit() {
    let (_fake, l) = link(Window::DEFAULT, 1 << 30);
    let ep = Endpoint::new(l.clone(), 1, Window::DEFAULT, Window::DEFAULT);
    l.table().register(ep.clone());
    let before = ALLOCATED.load(Ordering::Relaxed);
    let mut accepted = 0u64;
    for m in 0..64u64 {
        let carried: Vec<u64> = (0..4096).map(|i| 1_000_000 + 2 * (m * 4096 + i)).collect();
        // An empty body: only the channels it carries cost anything.
        match l.table().begin(&l, 1, CODEC_VERSION, carried, 0) {
            Some(msg) => {
                l.table().complete(msg);
                accepted += 1;
            }
            None => break,
        }
    }
    let grown = ALLOCATED.load(Ordering::Relaxed) - before;
    assert!(
        accepted < 64,
        "every message was accepted: carried ids cost nothing"
    );
    // One window's worth of pending endpoints at most, whatever the peer sends.
    assert!(
        grown < 64 << 20,
        "{grown} bytes allocated for {accepted} messages"
    );
}

#[test]
fn a_message_body_grows_in_few_steps() {
    let data = vec![7u8; 256 << 10];
    for mut body in [
        Body::Bytes(Vec::new()),
        Body::for_encoding(places_core::codec::RAW_F64S),
    ] {
        let before = REALLOCS.load(Ordering::Relaxed);
        body.extend_from_slice(&data);
        let reallocs = REALLOCS.load(Ordering::Relaxed) - before;
        assert!(
            reallocs < 4,
            "{reallocs} reallocations to fill a 256 KiB body"
        );
        assert_eq!(body.as_bytes(), &data[..]);
    }
}

#[test]
fn a_chain_of_channels_inside_messages_closes_without_deep_recursion() {
    let (fake, l) = link(Window::DEFAULT, 1 << 30);
    let ep = Endpoint::new(l.clone(), 1, Window::DEFAULT, Window::DEFAULT);
    l.table().register(ep.clone());
    // Message k arrives on channel k and carries channel k+1, fifty thousand deep.
    let mut on = 1u64;
    for i in 0..50_000u64 {
        let next = 1_000_001 + 2 * i;
        let msg = l
            .table()
            .begin(&l, on, CODEC_VERSION, vec![next], 0)
            .expect("accepted");
        l.table().complete(msg);
        on = next;
    }
    // On a stack the size of a small thread's: the close goes down the chain in a loop.
    let t = std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || ep.close())
        .unwrap();
    t.join().expect("the close overflowed its stack");
    // And every channel of the chain was closed, each with its `Close` to the peer.
    let closes = fake
        .controls
        .lock()
        .unwrap()
        .iter()
        .filter(|(i, c)| *i > 1_000_000 && *c == Control::Close)
        .count();
    assert_eq!(closes, 50_000);
}

/// A message whose `Serialize` panics.
#[derive(Clone, Debug, serde::Deserialize)]
struct PanicsWhenEncoded;

impl serde::Serialize for PanicsWhenEncoded {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("this Serialize panics on purpose")
    }
}

#[test]
fn a_serialize_that_panics_leaves_no_encoding_scope_on_its_thread() {
    // Threads serve one place after another (fork-join members share pooled threads): a put
    // whose encoding panics must not leave its scope behind, where a later place on the same
    // thread would bridge a local channel onto the dead message's link.
    let (before, _b) = places_core::place_channel::<u8, u8>();
    assert!(places_core::codec::encode_body(&before).is_err());
    let w = Window::new(1 << 20, 16);
    let (_l, link) = link(w, 1 << 30);
    let ep = Endpoint::new(link.clone(), 1, w, w);
    link.table().register(ep.clone());
    let ch: PlaceChannel<PanicsWhenEncoded, PanicsWhenEncoded> = remote_channel(ep);
    let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ch.put(PanicsWhenEncoded)));
    assert!(put.is_err(), "the Serialize panicked through put");
    let (after, _b) = places_core::place_channel::<u8, u8>();
    let encoded = places_core::codec::encode_body(&after);
    assert!(
        encoded.is_err(),
        "a local channel was encoded into a dead scope: {:?}",
        encoded.map(|(_, b)| b.len())
    );
}

#[test]
fn a_server_that_panics_leaves_no_log_sink_on_its_thread() {
    use std::sync::atomic::AtomicUsize;
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let served = std::panic::catch_unwind(|| {
        places_core::__private::rpc::with_server_log(
            |_| {
                HITS.fetch_add(1, Ordering::SeqCst);
            },
            || panic!("a server body panics on purpose"),
        )
    });
    assert!(served.is_err());
    // Outside a server, `log_to_parent` is `log_message`: the dead server's sink gets nothing.
    places_core::log_to_parent("after the server", places_core::Severity::Info);
    assert_eq!(HITS.load(Ordering::SeqCst), 0);
}
