# frozen_string_literal: true

require "spec_helper"

# TaskerEvents.dispatch_step_events: a completed step's declared events, from the Ruby API.
RSpec.describe "TaskerEvents.dispatch_step_events" do
  let(:namespace) { unique_namespace("dispatch") }
  let(:registry) { TaskerEvents::PublisherRegistry.instance }
  let(:log) { StringIO.new }
  let(:received) { recording_subscriber("#").received }

  before { TaskerEvents.logger = Logger.new(log) }

  after do
    registry.reset!
    TaskerEvents.logger = nil
  end

  def event(name, condition, publisher: nil, mode: "fast", schema: nil)
    { "name" => name, "condition" => condition, "delivery_mode" => mode,
      "publisher" => publisher, "schema" => schema }.compact
  end

  def start_with(events, retry_policy: { "retryable" => true, "limit" => 3 }, **settings)
    path = write_step_template(namespace, events, retry_policy:)
    # Subscribes the recorder now: only events published after that reach it.
    received
    TaskerEvents.start(templates: [path], **settings)
  end

  # What the gem logged, once it includes `text`: the core's lines reach the logger through
  # the drain thread, a moment after the call that logged them.
  def logged(text)
    deadline = Time.now + 5
    sleep 0.01 until log.string.include?(text) || Time.now > deadline
    log.string
  end

  def names
    received.map { |e| e[:event_name] }
  end

  def declared_change(&)
    counters_change(:declared_events, &)
  end

  def counters_change(*path)
    before = TaskerEvents.stats.dig(*path)
    yield
    after = TaskerEvents.stats.dig(*path)
    after.to_h { |key, value| [key, value - before[key]] }
  end

  describe "conditions" do
    def condition_events(publisher)
      [event("spec.succeeded", "success", publisher:),
       event("spec.failed", "failure", publisher:),
       event("spec.will_retry", "retryable_failure", publisher:),
       event("spec.gave_up", "permanent_failure", publisher:),
       event("spec.finished", "always", publisher:)]
    end

    # [what happened, step result, attempt, events expected] for a step whose policy retries,
    # with a limit of 3 attempts.
    retried_policy_cases = [
      ["a success", { success: true }, 1, %w[spec.succeeded spec.finished]],
      ["a success the handler calls retryable", { success: true, retryable: true }, 1,
       %w[spec.succeeded spec.finished]],
      ["a retryable failure on attempt 1 of 3", { success: false, retryable: true }, 1,
       %w[spec.failed spec.will_retry spec.finished]],
      ["a failure the handler calls permanent", { success: false, retryable: false }, 1,
       %w[spec.failed spec.gave_up spec.finished]],
      ["a failure the handler does not qualify, on attempt 2", { success: false }, 2,
       %w[spec.failed spec.will_retry spec.finished]],
      ["a retryable failure on the last attempt", { success: false, retryable: true }, 3,
       %w[spec.failed spec.gave_up spec.finished]],
      ["a retryable failure past the limit", { success: false, retryable: true }, 4,
       %w[spec.failed spec.gave_up spec.finished]],
      ["a retryable failure without an attempt number", { success: false, retryable: true },
       nil, %w[spec.failed spec.will_retry spec.finished]],
      ["a result without success", { result: { note: "no outcome" } }, 1,
       %w[spec.failed spec.will_retry spec.finished]]
    ]

    # The same for a step whose policy does not retry.
    unretried_policy_cases = [
      ["a failure the handler does not qualify", { success: false }, 1,
       %w[spec.failed spec.gave_up spec.finished]],
      ["a failure the handler calls retryable", { success: false, retryable: true }, 1,
       %w[spec.failed spec.will_retry spec.finished]]
    ]

    { "without a publisher" => nil, "through a Ruby publisher" => "Specs::PassThrough" }
      .each do |path, publisher_name|
      context path do
        before do
          if publisher_name
            registry.register(DeclaredEventHelpers::RecordingPublisher.new(publisher_name))
          end
        end

        retried_policy_cases.each do |label, step_result, attempt, expected|
          it "publishes #{expected.join(", ")} for #{label}" do
            start_with(condition_events(publisher_name))
            change = declared_change do
              dispatch_and_flush(declared_step_context(namespace, attempt:), step_result)
            end
            expect(names).to eq(expected)
            expect(change).to include(published: expected.size,
                                      condition_not_met: 5 - expected.size)
            expect(received.map { |e| e[:metadata][:fired_by] }.uniq)
              .to eq([publisher_name || "default"])
          end
        end

        unretried_policy_cases.each do |label, step_result, attempt, expected|
          it "publishes #{expected.join(", ")} for #{label}, when the policy does not retry" do
            start_with(condition_events(publisher_name), retry_policy: { "retryable" => false })
            dispatch_and_flush(declared_step_context(namespace, attempt:), step_result)
            expect(names).to eq(expected)
          end
        end
      end
    end
  end

  describe "the events" do
    let(:step_result) do
      { success: true, retryable: false, result: { transaction_id: "TXN-1", amount: 99.99 },
        metadata: { execution_time_ms: 40 } }
    end

    it "carry the step's result as payload and the step as metadata" do
      start_with([event("spec.fast", "success"), event("spec.both", "success", mode: "broadcast")],
                 database_url: PrivatePostgres.url, install_pgmq: true)
      context = declared_step_context(namespace)
      dispatch_and_flush(context, step_result)

      expect(received.map { |e| [e[:event_name], e[:delivery_mode]] })
        .to eq([%w[spec.fast fast], %w[spec.both broadcast]])
      received.each do |e|
        expect(e[:event_version]).to eq("1.0")
        expect(e[:payload]).to eq(transaction_id: "TXN-1", amount: 99.99)
        expect(e[:execution_result]).to eq(step_result)
        expect(e[:metadata].except(:fired_at)).to eq(
          task_uuid: context[:task_uuid], step_uuid: context[:step_uuid],
          step_name: DeclaredEventHelpers::STEP_NAME, namespace:,
          correlation_id: context[:task_uuid], fired_by: "default"
        )
      end
      expect(received.map { |e| e[:event_id] }.uniq.size).to eq(2)
    end

    it "take the correlation id from the context" do
      start_with([event("spec.fast", "success")])
      correlation_id = SecureRandom.uuid
      dispatch_and_flush(declared_step_context(namespace, correlation_id:), step_result)
      expect(received.fetch(0)[:metadata][:correlation_id]).to eq(correlation_id)
    end

    it "get a fresh UUIDv7 correlation id without a task uuid" do
      start_with([event("spec.fast", "success")])
      dispatch_and_flush(declared_step_context(namespace, task_uuid: nil), step_result)
      metadata = received.fetch(0)[:metadata]
      expect(metadata[:task_uuid]).to be_nil
      expect(metadata[:correlation_id]).to match(/\A\h{8}-\h{4}-7\h{3}-[89ab]\h{3}-\h{12}\z/)
    end

    it "carry the step result as execution_result even when it has no result" do
      start_with([event("spec.fast", "always")])
      dispatch_and_flush(declared_step_context(namespace), { success: false, retryable: true })
      expect(received.fetch(0)[:execution_result]).to eq(success: false, retryable: true)
    end

    it "are the same for a StepContext as for a Hash" do
      start_with([event("spec.fast", "success")])
      context = declared_step_context(namespace)
      dispatch_and_flush(TaskerEvents::StepContext.new(**context), step_result)
      expect(received.fetch(0)[:metadata]).to include(step_uuid: context[:step_uuid],
                                                      task_uuid: context[:task_uuid])
    end
  end

  describe "schemas" do
    let(:schema) do
      { "type" => "object", "required" => ["amount"],
        "properties" => { "amount" => { "type" => "number" } } }
    end

    it "skip an event whose payload breaks its schema, counting and logging it" do
      start_with([event("spec.checked", "success", schema:), event("spec.unchecked", "success")])
      change = declared_change do
        dispatch_and_flush(declared_step_context(namespace), { success: true,
                                                               result: { amount: "ten" } })
      end

      expect(names).to eq(["spec.unchecked"])
      expect(change).to include(schema_violation: 1, published: 1)
      log = logged("payload does not match its schema")
      line = log.lines.find { |l| l.include?("payload does not match its schema") }
      expect(line).to include("WARN", "event_name=spec.checked", "namespace=#{namespace}",
                              'violations="/amount: \\"ten\\" is not of type \\"number\\""')
    end

    it "publish a payload that matches" do
      start_with([event("spec.checked", "success", schema:, mode: "durable")], test_mode: true)
      context = declared_step_context(namespace)
      expect { dispatch_and_flush(context, { success: true, result: { amount: 1 } }) }
        .to have_published_domain_event("spec.checked").with_payload(amount: 1)
        .with_metadata(namespace:, step_uuid: context[:step_uuid]).in_mode(:durable).once
      expect(captured_domain_messages(namespace:).map { |m| m[:message][:payload] })
        .to eq([{ amount: 1 }])
    end

    it "check the payload a publisher made, and still call after_publish" do
      publisher = DeclaredEventHelpers::RecordingPublisher.new("Specs::Recorder")
      def publisher.transform_payload(*) = { amount: "a lot" }
      registry.register(publisher)
      start_with([event("spec.checked", "success", schema:, publisher: "Specs::Recorder")])

      change = declared_change do
        capture_native_stderr do
          dispatch_and_flush(declared_step_context(namespace), { success: true,
                                                                 result: { amount: 1 } })
        end
      end
      expect(received).to be_empty
      expect(change).to include(schema_violation: 1, published: 0, publisher_error: 0)
      expect(publisher.calls.map(&:first)).to eq(%i[should_publish? additional_metadata
                                                    before_publish after_publish])
    end
  end

  describe "refusals" do
    it "returns false and counts not_started before start" do
      context = declared_step_context(namespace)
      change = counters_change(:dispatch, :dropped) do
        expect(TaskerEvents.dispatch_step_events(context, { success: true })).to be(false)
      end
      expect(change).to include(not_started: 1, unknown_template: 0)
    end

    it "returns false after shutdown" do
      start_with([event("spec.fast", "success")])
      TaskerEvents.shutdown
      expect(TaskerEvents.dispatch_step_events(declared_step_context(namespace), { success: true }))
        .to be(false)
    end

    it "returns false for a template it does not know, counting and logging it" do
      start_with([event("spec.fast", "success")])
      unknown = [{ task_version: "9.9.9" }, { task_name: "other_task" },
                 { namespace: "#{namespace}_other" }]
      change = counters_change(:dispatch, :dropped) do
        unknown.each do |overrides|
          context = declared_step_context(namespace, **overrides)
          expect(TaskerEvents.dispatch_step_events(context, { success: true })).to be(false)
        end
      end
      expect(change).to include(unknown_template: 3)
      log = logged("task_version=9.9.9")
      expect(log.scan("step completion dropped").size).to eq(3)
      expect(log).to include("reason=unknown_template", "task_version=9.9.9")
      TaskerEvents.flush(timeout: 5)
      expect(received).to be_empty
    end

    it "returns false and counts unknown_step for a step its template does not have" do
      start_with([event("spec.fast", "success")])
      context = declared_step_context(namespace, step_name: "other")
      accepted = TaskerEvents.dispatch_step_events(context, { success: true })
      expect(TaskerEvents.flush(timeout: 5)).to be(true)
      expect(accepted).to be(false)
      expect(received).to be_empty
      expect(logged("reason=unknown_step")).to include("step_name=other")
    end

    it "returns false and counts channel_full when completions come faster than processed" do
      # A hundred declarations make processing one completion far slower than handing one
      # over, so a one-slot channel is soon full.
      start_with(Array.new(100) { |i| event("spec.e#{i}", "always") },
                 command_buffer_size: 1, log_dropped_events: false)
      context = TaskerEvents::StepContext.new(**declared_step_context(namespace, step_uuid: nil))
      results = []
      change = counters_change(:dispatch, :dropped) do
        until results.include?(false) || results.size >= 100_000
          results << TaskerEvents.dispatch_step_events(context, { success: true })
        end
      end
      expect(results).to include(false)
      expect(change).to include(channel_full: results.count(false))
      expect(TaskerEvents.flush(timeout: 10)).to be(true)
      expect(received.size).to eq(100 * results.count(true))
    end
  end

  describe "deduplication" do
    it "publishes a completion dispatched twice once" do
      start_with([event("spec.failed", "failure"), event("spec.finished", "always")])
      context = declared_step_context(namespace)
      change = declared_change do
        2.times { dispatch_and_flush(context, { success: false }) }
      end
      expect(names).to eq(%w[spec.failed spec.finished])
      expect(change).to include(published: 2, deduplicated: 2)
    end

    it "publishes the next attempt of the same step again" do
      start_with([event("spec.failed", "failure")])
      context = declared_step_context(namespace)
      dispatch_and_flush(context, { success: false })
      dispatch_and_flush(context.merge(attempt: 2), { success: false })
      expect(received.map { |e| e[:metadata][:step_uuid] }).to eq([context[:step_uuid]] * 2)
    end

    it "publishes a completion dispatched twice through a publisher once" do
      publisher = DeclaredEventHelpers::RecordingPublisher.new("Specs::Recorder")
      registry.register(publisher)
      start_with([event("spec.failed", "failure", publisher: "Specs::Recorder")])
      context = declared_step_context(namespace)
      2.times { dispatch_and_flush(context, { success: false }) }
      expect(names).to eq(["spec.failed"])
      expect(publisher.calls.count { |call| call[0] == :should_publish? }).to eq(1)
    end

    it "cannot tell completions apart without a step uuid, so publishes each" do
      start_with([event("spec.failed", "failure")])
      context = declared_step_context(namespace, step_uuid: nil)
      2.times { dispatch_and_flush(context, { success: false }) }
      expect(names).to eq(%w[spec.failed spec.failed])
    end

    it "is off with deduplication_cache_size: 0" do
      start_with([event("spec.failed", "failure")], deduplication_cache_size: 0)
      context = declared_step_context(namespace)
      2.times { dispatch_and_flush(context, { success: false }) }
      expect(names).to eq(%w[spec.failed spec.failed])
    end
  end

  describe "publishers named by templates" do
    it "warns at start about an unregistered publisher and uses the default one" do
      expect(start_with([event("spec.fast", "success", publisher: "Specs::Missing")])).to be(true)
      expect(log.string).to include(
        "WARN -- : tasker_events: task templates name publishers that are not registered: " \
        "Specs::Missing; their events use the default publisher"
      )

      dispatch_and_flush(declared_step_context(namespace), { success: true, result: { a: 1 } })
      expect(received.fetch(0)).to include(payload: { a: 1 })
      expect(received.fetch(0)[:metadata][:fired_by]).to eq("default")
    end

    it "does not warn about a publisher registered under a longer name" do
      registry.register(DeclaredEventHelpers::RecordingPublisher.new("Specs::Payments::Recorder"))
      start_with([event("spec.fast", "success", publisher: "Recorder")], strict_publishers: true)
      expect(log.string).not_to include("not registered")
      dispatch_and_flush(declared_step_context(namespace), { success: true })
      expect(received.fetch(0)[:metadata][:fired_by]).to eq("Specs::Payments::Recorder")
    end

    it "raises with strict_publishers, naming every unregistered publisher" do
      registry.register(DeclaredEventHelpers::RecordingPublisher.new("Specs::Known"))
      events = [event("spec.a", "success", publisher: "Specs::Zeta"),
                event("spec.b", "success", publisher: "Specs::Known"),
                event("spec.c", "success", publisher: "Specs::Alpha")]
      expect { start_with(events, strict_publishers: true) }.to raise_error(
        TaskerEvents::UnknownPublisherError,
        "task templates name publishers that are not registered: Specs::Alpha, Specs::Zeta"
      )
    end

    it "counts publisher events as ffi_disabled when Ruby integration is off" do
      registry.register(DeclaredEventHelpers::RecordingPublisher.new("Specs::Recorder"))
      start_with([event("spec.a", "success", publisher: "Specs::Recorder"),
                  event("spec.b", "success")],
                 ffi_integration_enabled: false, log_dropped_events: false)
      change = declared_change do
        dispatch_and_flush(declared_step_context(namespace), { success: true })
      end
      # A step's matching events travel together, to keep their order, so the event without
      # a publisher is not published either.
      expect(change).to include(ffi_disabled: 2, published: 0)
      expect(received).to be_empty
      expect(TaskerEvents.stats[:ruby_publishers][:queued]).to eq(0)
    end
  end

  describe "delivery problems" do
    it "never raise: a durable event without a database is accepted, then counted" do
      start_with([event("spec.durable", "success", mode: "durable")], log_dropped_events: false)
      change = counters_change(:durable, :dropped) do
        dispatch_and_flush(declared_step_context(namespace), { success: true })
      end
      expect(change).to include(no_database: 1)
    end

    it "never raise: a durable event for an unreachable database is kept, then counted" do
      start_with([event("spec.durable", "success", mode: "durable")],
                 database_url: "postgres://postgres@127.0.0.1:1/none", connect_timeout_ms: 200,
                 shutdown_drain_timeout_ms: 200, log_dropped_events: false)
      before = TaskerEvents.stats[:durable]
      expect(TaskerEvents.dispatch_step_events(declared_step_context(namespace),
                                               { success: true })).to be(true)
      expect(TaskerEvents.flush(timeout: 0.5)).to be(false) # kept for a retry, not settled
      expect(TaskerEvents.stats[:durable][:queued] - before[:queued]).to eq(1)

      expect(TaskerEvents.shutdown[:dropped]).to eq(1)
      expect(TaskerEvents.stats[:durable][:dropped][:shutting_down] -
             before[:dropped][:shutting_down]).to eq(1)
    end

    it "raise ValidationError for input that can never be dispatched, naming it" do
      start_with([event("spec.fast", "success")])
      context = declared_step_context(namespace)
      expect { TaskerEvents.dispatch_step_events(context.merge(step_uuid: "nope"), {}) }
        .to raise_error(TaskerEvents::ValidationError, /step_uuid/)
      expect { TaskerEvents.dispatch_step_events(context, [1]) }
        .to raise_error(TaskerEvents::ValidationError, "step_result must be a Hash")
      expect { TaskerEvents.dispatch_step_events(context, { result: { ratio: Float::NAN } }) }
        .to raise_error(TaskerEvents::ValidationError, /step_result\.result\.ratio/)
      expect { TaskerEvents.dispatch_step_events(context.merge(attempt: 0), {}) }
        .to raise_error(TaskerEvents::ValidationError, /attempt/)
    end
  end

  describe "templates given to start" do
    it "refuses a malformed template and stays stopped" do
      path = write_declared_template("name: t\nnamespace_name: Bad-Ns\nversion: 1\nsteps: []\n")
      expect { TaskerEvents.start(templates: [path]) }.to raise_error(
        TaskerEvents::TemplateError, /\A#{Regexp.escape(path)}:2: invalid namespace "Bad-Ns"/
      )
      expect(TaskerEvents.started?).to be(false)
    end

    it "refuses a glob that matches nothing" do
      pattern = File.join(declared_tmp_dir, "*.yaml")
      expect { TaskerEvents.start(templates: [pattern]) }
        .to raise_error(TaskerEvents::TemplateError, "no task template matches #{pattern.inspect}")
      expect(TaskerEvents.started?).to be(false)
    end

    it "refuses the same task and version from two files, naming both" do
      first = write_step_template(namespace, [event("spec.fast", "success")])
      second = write_step_template(namespace, [event("spec.fast", "success")])
      expect { TaskerEvents.start(templates: [first, second]) }.to raise_error(
        TaskerEvents::TemplateError,
        "#{second}: template #{namespace}/#{DeclaredEventHelpers::TASK_NAME} version 1.0.0 " \
        "is already loaded from #{first}"
      )
    end

    it "loads every template a glob matches" do
      write_step_template(namespace, [event("spec.fast", "success")])
      other = unique_namespace("dispatch")
      write_step_template(other, [event("spec.other", "success")])
      # Subscribes the recorder now: only events published after that reach it.
      received
      TaskerEvents.start(templates: [File.join(declared_tmp_dir, "*.yaml")])
      dispatch_and_flush(declared_step_context(namespace), { success: true })
      dispatch_and_flush(declared_step_context(other), { success: true })
      expect(names).to eq(%w[spec.fast spec.other])
    end
  end
end
