fn main() {
    let _ = places::spawn!(ch => {
        let _ = ch;
    });
}
