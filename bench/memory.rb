# frozen_string_literal: true

require "rbconfig"
require "tmpdir"

module Bench
  # Resident memory while durable events are published at ten times the rate PostgreSQL takes
  # them: the buffers fill, the rest is dropped and counted, and memory must level off at what
  # the buffer settings allow instead of growing with the backlog.
  module Memory
    TICK = 0.01

    # Runs in a fresh process: the figures before it leave this one's heap grown, and
    # memory they freed is not always handed back to the system.
    def self.in_subprocess(report, rate:, seconds:)
      script = File.expand_path("run.rb", __dir__)
      Dir.mktmpdir("tasker_events-bench") do |dir|
        out = File.join(dir, "memory.json")
        command = [RbConfig.ruby, "-I", File.expand_path("../lib", __dir__), script,
                   "--only", "memory", "--rate", rate.to_s, "--seconds", seconds.to_s,
                   "--json", out, "--quiet"]
        system(*command, exception: true)
        JSON.parse(File.read(out), symbolize_names: true)[:rows].each do |row|
          report << Row.new(**row)
        end
      end
    end

    def self.run(report, url:, rate:, seconds:)
      TaskerEvents.start(database_url: url, install_pgmq: true,
                         logger: Logger.new($stderr, level: Logger::FATAL))
      settings = TaskerEvents.event_system.configuration.settings
      samples = publish_for(seconds, rate * 10)
      report << row(samples, settings, seconds, rate * 10)
    ensure
      TaskerEvents.shutdown
    end

    # Publishes `rate` events a second (or as many as the thread manages) for `seconds`,
    # sampling RSS once a second.
    # @return [Array<Float>] MiB, one per second, the first taken before publishing
    def self.publish_for(seconds, rate)
      namespace = "bench_mem_#{SecureRandom.hex(3)}"
      payload = PAYLOADS.fetch("200 B")
      per_tick = [(rate * TICK).ceil, 1].max
      samples = [Bench.rss_mib]
      started = Bench.monotonic
      next_sample = started + 1
      until (now = Bench.monotonic) > started + seconds
        per_tick.times { TaskerEvents.publish("bench.memory", payload, namespace:) }
        (samples << Bench.rss_mib) && (next_sample += 1) if now >= next_sample
        pause = TICK - (Bench.monotonic - now)
        sleep(pause) if pause.positive?
      end
      samples
    end

    def self.row(samples, settings, seconds, rate)
      warm = samples[samples.size / 4]
      late = samples.drop(samples.size / 2)
      growth = late.max - warm
      held = settings[:durable_buffer_size] + settings[:command_buffer_size]
      Row.new(
        figure: "RSS over #{seconds} s at 10x the sustainable rate", payload: "200 B",
        ours: "#{samples.first.round} -> #{samples.last.round}", unit: "MiB",
        peer: warm.round, peer_name: "MiB after #{samples.size / 4} s", ratio: late.max / warm,
        target: "flat", met: growth <= [warm * 0.1, 16].max,
        note: "aimed at #{rate.round} events/s; buffers hold #{held} events; " \
              "dropped #{TaskerEvents.stats.dig(:durable, :dropped, :channel_full)} as " \
              "channel_full; max #{samples.max.round} MiB"
      )
    end
  end
end
