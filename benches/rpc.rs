//! RPC calls against tarpc and raw TCP, side by side in one run.
//!
//! ```text
//! cargo bench --bench rpc
//! ```
//!
//! - a `get` on a named tuple server (`define_named_remote_server!`) on a local node, over a
//!   `connect_to_named_place` connection, vs a tarpc call of the same shape (bincode over TCP on
//!   loopback, multi-threaded tokio client and server) vs a raw blocking TCP ping-pong;
//! - the throughput of casts to the same server.
//!
//! This bench binary is its own node executable. `PLACES_BENCH_QUICK=1` runs fewer calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::{future, StreamExt};
use places::{
    connect_to_named_place, create_place_node, define_named_remote_server, supervise_place_at,
    NodeOptions, PlaceOptions, RemotePlace, Routed,
};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;

define_named_remote_server! {
    pub tuple_server {
        state h: HashMap<String, u64> = HashMap::new();
        state casts: u64 = 0;
        rpc fn set(k: String, v: u64) -> u64 {
            h.insert(k, v);
            v
        }
        rpc fn get(k: String) -> Option<u64> {
            h.get(&k).copied()
        }
        rpc fn cast_count() -> u64 {
            casts
        }
        cast fn hello() {
            casts += 1;
        }
    }
}

/// The same service in tarpc.
#[tarpc::service]
trait Tuple {
    /// Looks a key up.
    async fn get(k: String) -> Option<u64>;
}

#[derive(Clone)]
struct TupleServer;

impl Tuple for TupleServer {
    async fn get(self, _: tarpc::context::Context, k: String) -> Option<u64> {
        (k == "user0").then_some(100)
    }
}

#[path = "common/raw_tcp.rs"]
mod raw_tcp;

#[path = "common/stats.rs"]
mod stats;
use stats::{median, us};

fn raw_round_trip(n: u32) -> Duration {
    raw_tcp::round_trips(raw_tcp::echo_server(16), 16, n)
}

fn tarpc_round_trip(rt: &tokio::runtime::Runtime, n: u32) -> Duration {
    rt.block_on(async {
        let mut listener = tarpc::serde_transport::tcp::listen("127.0.0.1:0", Bincode::default)
            .await
            .expect("listen");
        let addr = listener.local_addr();
        listener.config_mut().max_frame_length(usize::MAX);
        tokio::spawn(
            listener
                .filter_map(|r| future::ready(r.ok()))
                .map(BaseChannel::with_defaults)
                .map(|channel| {
                    channel
                        .execute(TupleServer.serve())
                        .for_each(|f| async move {
                            tokio::spawn(f);
                        })
                })
                .buffer_unordered(10)
                .for_each(|_| async {}),
        );
        let transport = tarpc::serde_transport::tcp::connect(addr, Bincode::default)
            .await
            .expect("connect");
        let client = TupleClient::new(tarpc::client::Config::default(), transport).spawn();
        let _ = client.get(tarpc::context::current(), "user0".into()).await;
        let start = Instant::now();
        for _ in 0..n {
            let v = client
                .get(tarpc::context::current(), "user0".into())
                .await
                .expect("call");
            assert_eq!(v, Some(100));
        }
        start.elapsed() / n
    })
}

fn main() {
    places::init().expect("registry");
    let quick = std::env::var_os("PLACES_BENCH_QUICK").is_some();
    let (samples, calls, casts): (usize, u32, u32) = if quick {
        (3, 300, 20_000)
    } else {
        (9, 3_000, 200_000)
    };
    println!("rpc bench: {samples} samples, medians");

    let node = create_place_node("localhost", NodeOptions::new()).expect("node");
    let _server: RemotePlace<Routed<TupleServerRequest, TupleServerResponse>, TupleServerResponse> =
        supervise_place_at(
            &node,
            module_path!(),
            "make_tuple_server",
            PlaceOptions::new().named("tuple-server"),
        )
        .expect("server");
    let c =
        connect_to_named_place::<TupleServerRequest, TupleServerResponse>(&node, "tuple-server")
            .expect("connect");
    tuple_server_set(&c, "user0".into(), 100).expect("set");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let (mut ours, mut tarpc, mut raw, mut cast_rates) = (vec![], vec![], vec![], vec![]);
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..calls {
            assert_eq!(
                tuple_server_get(&c, "user0".into()).expect("get"),
                Some(100)
            );
        }
        ours.push(start.elapsed() / calls);
        tarpc.push(tarpc_round_trip(&rt, calls));
        raw.push(raw_round_trip(calls));

        let before = tuple_server_cast_count(&c).expect("count");
        let start = Instant::now();
        for _ in 0..casts {
            tuple_server_hello(&c).expect("cast");
        }
        // A call after the casts returns once the server has handled them all.
        let after = tuple_server_cast_count(&c).expect("count");
        let elapsed = start.elapsed();
        assert_eq!(after - before, u64::from(casts));
        cast_rates.push(Duration::from_secs_f64(
            elapsed.as_secs_f64() / f64::from(casts),
        ));
    }
    let (ours, tarpc, raw, per_cast) =
        (median(ours), median(tarpc), median(raw), median(cast_rates));
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "{:<48} {:>9}  vs tarpc {:>9}: {:.2}x (target <= 1.0x)   vs raw TCP {:>9}: {:.2}x",
        "named tuple server get (remote connection)",
        us(ours),
        us(tarpc),
        r(ours, tarpc),
        us(raw),
        r(ours, raw)
    );
    println!(
        "{:<48} {:>9.0} casts/s (target >= 440000, 10x Racket's ~44000)",
        "casts to the named tuple server",
        1.0 / per_cast.as_secs_f64()
    );
}
