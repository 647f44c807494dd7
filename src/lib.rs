pub use breakwater_circuit_breaker as circuit_breaker;
