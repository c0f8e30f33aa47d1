use places::{define_remote_server, Place};

struct Statement {
    balance: u64,
}

define_remote_server! {
    bank {
        state balance: u64 = 0;
        rpc fn statement() -> Statement {
            Statement { balance }
        }
    }
}

fn main() {
    let server: Place<BankRequest, BankResponse> = Place::spawn(make_bank).unwrap();
    println!("{}", bank_statement(&server).unwrap().balance);
}
