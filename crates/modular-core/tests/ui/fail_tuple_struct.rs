use modular_core::DynamicConfig;

#[derive(DynamicConfig)]
struct Port(u16);

fn main() {}
