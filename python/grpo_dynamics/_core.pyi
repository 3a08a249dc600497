# Stubs for the compiled module grpo_dynamics._core (kept in step with cpp/bindings/*.cpp).
