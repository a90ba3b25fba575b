# frozen_string_literal: true

desc "Run the side-by-side benchmark (bin/bench); BENCH_ARGS='--quick --json out.json'"
task :bench do
  sh "bin/bench", *ENV.fetch("BENCH_ARGS", "").split
end
