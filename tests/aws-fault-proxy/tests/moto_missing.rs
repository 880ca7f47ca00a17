//! Alone in its test binary because it sets a process-wide environment variable.

#[test]
fn missing_moto_server_tells_to_run_setup() {
    std::env::set_var(
        aws_fault_proxy::moto::MOTO_SERVER_ENV,
        "/nonexistent/arnsync/moto_server",
    );
    let err = aws_fault_proxy::moto::Moto::start()
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/arnsync/moto_server"), "{err}");
    assert!(err.contains("tests/setup.sh"), "{err}");
}
