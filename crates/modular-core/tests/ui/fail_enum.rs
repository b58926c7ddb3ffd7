use modular_core::DynamicConfig;

#[derive(DynamicConfig)]
enum Mode {
    Fast,
    Safe,
}

fn main() {}
