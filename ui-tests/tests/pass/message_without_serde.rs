//! `#[places::message]` makes types sendable with no serde dependency of the caller's own.
#[places::message]
#[derive(Debug, PartialEq)]
enum Job {
    Compile { file: String, level: u8 },
    Done,
}

#[places::message]
#[derive(Debug, PartialEq)]
struct Batch(Vec<Job>);

fn main() {
    let bytes = places::codec::encode(&Batch(vec![Job::Compile { file: "a.rkt".into(), level: 2 }, Job::Done])).unwrap();
    let back: Batch = places::codec::decode(&bytes).unwrap();
    assert_eq!(back, Batch(vec![Job::Compile { file: "a.rkt".into(), level: 2 }, Job::Done]));
}
