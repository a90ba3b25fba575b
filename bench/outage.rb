# frozen_string_literal: true

module Bench
  # What `publish` costs the step while PostgreSQL is down: the event goes to the durable
  # publisher's buffer exactly as when PostgreSQL is up, so the cost must not change.
  module Outage
    # Caller CPU per durable publish while PostgreSQL is stopped, against while it runs.
    def self.run(report, url:, runs:, iterations:)
      return skipped_outage(report) unless PrivatePostgres.managed?

      Durable.start(url, iterations * (runs + 1) * 2)
      queue = Durable.namespace
      PAYLOADS.each do |label, payload|
        up = Bench.sample(runs) { cost(payload, queue, iterations) }
        PrivatePostgres.stop
        down = Bench.sample(runs) do
          Bench.cpu_ns_per_call(iterations) do
            Durable.publish(payload, queue)
          end
        end
        PrivatePostgres.start
        TaskerEvents.flush(timeout: 120) or raise "events kept in the outage were not written"
        ratio = down.median / up.median
        report << Row.new(figure: "durable publish caller CPU, PostgreSQL stopped",
                          payload: label, ours: down.median, unit: "ns", peer: up.median,
                          peer_name: "ns while it runs", ratio:, target: "<= 1.5x",
                          met: ratio <= 1.5, spread: down.spread)
      end
    ensure
      TaskerEvents.shutdown
    end

    def self.cost(payload, queue, iterations)
      cost = Bench.cpu_ns_per_call(iterations) { Durable.publish(payload, queue) }
      TaskerEvents.flush(timeout: 120) or raise "flush timed out"
      cost
    end

    def self.skipped_outage(report)
      report << Row.new(figure: "durable publish caller CPU, PostgreSQL stopped", payload: "-",
                        ours: "-", unit: "", peer_name: "skipped", target: "<= 1.5x",
                        met: false, note: "DATABASE_URL is a server this run may not stop")
    end
  end
end
