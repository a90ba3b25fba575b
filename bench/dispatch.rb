# frozen_string_literal: true

require "tmpdir"
require "yaml"

module Bench
  # `dispatch_step_events` from the step's thread, for a step whose event has a custom Ruby
  # publisher, against the same step without one. The publisher runs on the drain thread, so
  # the step's thread should barely notice it.
  module Dispatch
    # Builds the payload from the step result, as the design document's publisher does.
    class Publisher < TaskerEvents::BasePublisher
      def name = "Bench::PaymentPublisher"

      def transform_payload(step_result, _declaration, _context = nil)
        result = step_result[:result]
        { transaction_id: result[:transaction_id], amount: result[:amount], currency: "USD" }
      end

      def additional_metadata(step_result, _declaration, _context = nil)
        { execution_time_ms: step_result.dig(:metadata, :execution_time_ms) }
      end
    end

    def self.template(dir, task, publisher)
      event = { "name" => "bench.payment_processed", "condition" => "success",
                "delivery_mode" => "fast", "publisher" => publisher }.compact
      document = { "name" => task, "namespace_name" => "bench", "version" => "1.0.0",
                   "steps" => [{ "name" => "pay", "publishes_events" => [event] }] }
      File.join(dir, "#{task}.yaml").tap { |path| File.write(path, YAML.dump(document)) }
    end

    def self.context(task)
      TaskerEvents::StepContext.new(task_uuid: SecureRandom.uuid, step_uuid: SecureRandom.uuid,
                                    step_name: "pay", namespace: "bench", task_name: task,
                                    task_version: "1.0.0", attempt: 1)
    end

    def self.cost(task, step_result, iterations)
      contexts = Array.new(iterations) { context(task) }
      index = -1
      cost = Bench.cpu_ns_per_call(iterations) do
        TaskerEvents.dispatch_step_events(contexts[index += 1], step_result)
      end
      TaskerEvents.flush(timeout: 60) or raise "flush timed out"
      cost
    end

    def self.caller_cost(report, runs:, iterations:)
      Dir.mktmpdir("tasker_events-bench") do |dir|
        TaskerEvents::PublisherRegistry.instance.register(Publisher.new)
        paths = [template(dir, "plain", nil), template(dir, "published", Publisher.new.name)]
        TaskerEvents.start(templates: paths, command_buffer_size: iterations * 2,
                           broadcast_buffer_size: iterations * 2,
                           logger: Logger.new($stderr, level: Logger::ERROR))
        PAYLOADS.each { |label, payload| row(report, label, payload, runs, iterations) }
      ensure
        TaskerEvents.shutdown
      end
    end

    def self.row(report, label, payload, runs, iterations)
      step_result = { success: true, result: payload, metadata: { execution_time_ms: 12 } }
      with = Bench.sample(runs) { cost("published", step_result, iterations) }
      without = Bench.sample(runs) { cost("plain", step_result, iterations) }
      ratio = with.median / without.median
      report << Row.new(figure: "dispatch_step_events caller CPU, Ruby publisher",
                        payload: label, ours: with.median, unit: "ns", peer: without.median,
                        peer_name: "ns without a publisher", ratio:, target: "<= 1.5x",
                        met: ratio <= 1.5, spread: with.spread)
    end
  end
end
