// The body is lifted into a function of its own: locals of the enclosing function are not
// there; send what the place needs as a message.
fn main() {
    let offset = 10u64;
    let _ = places::spawn!(ch: places::PlaceChannel<u64> => {
        let n = ch.get().unwrap();
        let _ = ch.put(n + offset);
    });
}
