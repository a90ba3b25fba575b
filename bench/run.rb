# frozen_string_literal: true

# The side-by-side benchmark: every figure against its peer, measured in this run, with the
# ratio and the target. Run it with `rake bench` or `bin/bench` (which build the extension and
# start a private PostgreSQL); `--json FILE` also writes the figures, `--quick` runs fewer and
# shorter rounds for a look, not for the record.

require "optparse"
require "etc"
require "logger"
require "tasker_events"
require_relative "../spec/support/private_postgres"
require_relative "harness"
require_relative "report"
require_relative "in_process"
require_relative "durable"
require_relative "outage"
require_relative "dispatch"
require_relative "memory"

options = { json: nil, quick: false, only: nil, rate: nil, seconds: nil, quiet: false }
OptionParser.new do |parser|
  parser.banner = "usage: bench/run.rb [--quick] [--json FILE] [--only NAME]"
  parser.on("--json FILE", "also write the figures as JSON") { |path| options[:json] = path }
  parser.on("--quick", "fewer, shorter rounds") { options[:quick] = true }
  parser.on("--only NAME", "one group: in_process, durable, dispatch, memory") do |name|
    options[:only] = name
  end
  parser.on("--rate N", Float, "memory: the sustainable durable rate, events/s") do |rate|
    options[:rate] = rate
  end
  parser.on("--seconds N", Integer, "memory: how long to publish") { |n| options[:seconds] = n }
  parser.on("--quiet", "print no table (for the memory figure's own process)") do
    options[:quiet] = true
  end
end.parse!

quick = options[:quick]
runs = quick ? 3 : 5
url = ENV.fetch("DATABASE_URL") { abort "DATABASE_URL is not set; run bin/bench" }
postgres_version = PG.connect(url).then { |c| c.server_version.tap { c.close } }

environment = {
  "cores" => Etc.nprocessors, "ruby" => RUBY_VERSION, "tasker_events" => TaskerEvents::VERSION,
  "postgresql" => "#{postgres_version / 10_000}.#{postgres_version % 10_000}",
  "activesupport" => ActiveSupport::VERSION::STRING, "wisper" => Wisper::VERSION,
  "runs" => runs, "date" => Time.now.utc.iso8601
}
report = Bench::Report.new(environment, quiet: options[:quiet])
report.header unless options[:quiet]
wanted = ->(group) { options[:only].nil? || options[:only] == group }
durable_rate = nil

if wanted.call("in_process")
  Bench::InProcess.caller_cost(report, runs:, iterations: quick ? 20_000 : 100_000)
  Bench::InProcess.throughput(report, runs:, events: quick ? 50_000 : 200_000)
  Bench::InProcess.latency(report, samples: quick ? 500 : 2000)
end
if wanted.call("durable")
  rates = Bench::Durable.throughput(report, url:, runs:, events: quick ? 10_000 : 50_000)
  durable_rate = rates.fetch("200 B")
end
if wanted.call("dispatch")
  Bench::Dispatch.caller_cost(report, runs:, iterations: quick ? 10_000 : 50_000)
end
if wanted.call("durable")
  Bench::Outage.run(report, url:, runs:, iterations: quick ? 5_000 : 20_000)
end
seconds = options[:seconds] || (quick ? 10 : 60)
if options[:only] == "memory"
  Bench::Memory.run(report, url:, rate: options[:rate] || 20_000.0, seconds:)
elsif wanted.call("memory")
  Bench::Memory.in_subprocess(report, rate: durable_rate || 20_000.0, seconds:)
end

report.footer unless options[:quiet]
report.write_json(options[:json]) if options[:json]
