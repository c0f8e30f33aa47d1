use places::{place, PlaceChannel};

struct Job {
    id: u32,
}

#[place]
fn run_jobs(ch: PlaceChannel<Job>) {
    while let Ok(job) = ch.get() {
        let _ = job.id;
    }
}

fn main() {}
