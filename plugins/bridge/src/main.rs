fn main() {
    cni_protocol::skel::main(&bridge::Bridge, "bridge")
}
