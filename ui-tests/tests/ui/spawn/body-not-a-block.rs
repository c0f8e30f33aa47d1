fn main() {
    let _ = places::spawn!(ch: places::PlaceChannel<u64> => ch.get());
}
