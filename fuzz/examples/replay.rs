//! Runs one target on one file and shows the finding:
//! `cargo run -p spot-fuzz --example replay -- TARGET FILE`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (name, file) = (&args[1], &args[2]);
    let target = spot_fuzz::TARGETS
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no target {name}"))
        .1;
    target(&std::fs::read(file).expect("file"));
    println!("{name}: {file} passes");
}
