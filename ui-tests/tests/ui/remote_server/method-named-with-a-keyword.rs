use places::define_remote_server;

define_remote_server! {
    robot {
        state position: (i32, i32) = (0, 0);
        cast fn move(dx: i32, dy: i32) {
            position.0 += dx;
            position.1 += dy;
        }
        rpc fn position() -> (i32, i32) {
            position
        }
    }
}

fn main() {}
