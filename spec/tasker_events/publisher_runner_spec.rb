# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::PublisherRunner do
  let(:registry) { TaskerEvents::PublisherRegistry.instance }
  let(:log) { StringIO.new }
  let(:calls) { [] }

  before { TaskerEvents.logger = Logger.new(log) }

  after do
    registry.reset!
    TaskerEvents.logger = nil
  end

  def recording_publisher(name, raise_in: nil, failing_event: nil)
    DeclaredEventHelpers::RecordingPublisher.new(name, calls:, raise_in:, failing_event:)
  end

  def declaration(name, publisher)
    { name:, description: nil, condition: "success", delivery_mode: "fast", publisher:,
      schema: nil }
  end

  describe "#run with a stand-in for the native job" do
    let(:job_class) do
      Struct.new(:step_result, :context, :declarations, :calls) do
        def publish(index, payload, metadata, fired_by)
          calls << [:publish, index, payload, metadata, fired_by]
          "event-#{index}"
        end

        def record(outcome, count)
          calls << [:record, outcome, count]
        end
      end
    end
    let(:step_result) { { success: true, result: { amount: 5 }, metadata: {} } }
    let(:context) do
      { task_uuid: "task-1", step_name: "charge", namespace: "payments", correlation_id: "c-1" }
    end

    def job(*declarations)
      job_class.new(step_result, context, declarations, calls)
    end

    it "calls the hooks in the documented order, publishing between before and after" do
      registry.register(recording_publisher("Specs::Recorder"))
      described_class.new(registry).run(job(declaration("a.done", "Specs::Recorder")))

      expect(calls).to eq(
        [[:should_publish?, "a.done"], [:transform_payload, "a.done"],
         [:additional_metadata, "a.done"], [:before_publish, "a.done"],
         [:publish, 0, { amount: 5 }, {}, "Specs::Recorder"], [:after_publish, "a.done"]]
      )
    end

    it "resolves a short publisher name and reports the publisher's full name as fired_by" do
      registry.register(recording_publisher("Specs::Payments::Recorder"))
      described_class.new(registry).run(job(declaration("a.done", "Recorder")))
      expect(calls.assoc(:publish))
        .to eq([:publish, 0, { amount: 5 }, {}, "Specs::Payments::Recorder"])
    end

    it "uses the default behaviour and fired_by \"default\" without a registered publisher" do
      described_class.new(registry).run(job(declaration("a.plain", nil),
                                            declaration("a.orphan", "Specs::NotRegistered")))
      expect(calls).to eq([[:publish, 0, { amount: 5 }, {}, "default"],
                           [:publish, 1, { amount: 5 }, {}, "default"]])
    end

    it "passes additional_metadata and the transformed payload to the job" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Enricher"

        def transform_payload(step_result, _declaration, _context)
          { cents: step_result[:result][:amount] * 100 }
        end

        def additional_metadata(*) = { region: "eu" }
      end.new
      registry.register(publisher)
      described_class.new(registry).run(job(declaration("a.done", "Specs::Enricher")))
      expect(calls).to eq([[:publish, 0, { cents: 500 }, { region: "eu" }, "Specs::Enricher"]])
    end

    it "treats a nil additional_metadata as none" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Quiet"
        def additional_metadata(*) = nil
      end.new
      registry.register(publisher)
      described_class.new(registry).run(job(declaration("a.done", "Specs::Quiet")))
      expect(calls).to eq([[:publish, 0, { amount: 5 }, {}, "Specs::Quiet"]])
    end

    it "records publisher_skipped when should_publish? is false and goes on" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Picky"
        def should_publish?(_result, declaration, _context) = declaration[:name] != "a.skip"
      end.new
      registry.register(publisher)
      described_class.new(registry).run(job(declaration("a.skip", "Specs::Picky"),
                                            declaration("a.keep", "Specs::Picky")))
      expect(calls).to eq([[:record, "publisher_skipped", 1],
                           [:publish, 1, { amount: 5 }, {}, "Specs::Picky"]])
    end

    %i[should_publish? transform_payload additional_metadata before_publish].each do |hook|
      it "reports an error in #{hook}, does not publish, and goes on with the next event" do
        registry.register(recording_publisher("Specs::Flaky", raise_in: hook,
                                                              failing_event: "a.first"))
        described_class.new(registry).run(job(declaration("a.first", "Specs::Flaky"),
                                              declaration("a.second", "Specs::Flaky")))

        expect(calls.select { |call| call[0] == :publish }.map { |call| call[1] }).to eq([1])
        expect(calls).to include([:record, "publisher_error", 1])
        error_call = calls.assoc(:on_publish_error)
        expect(error_call[0..3]).to eq([:on_publish_error, "a.first", step_result, context])
        expect(error_call[4]).to be_a(RuntimeError).and have_attributes(message: "boom in #{hook}")
        expect(log.string).to include(
          "WARN -- : tasker_events: publisher Specs::Flaky raised RuntimeError: boom in #{hook}; " \
          "event not published event_name=a.first namespace=payments step_name=charge " \
          "correlation_id=c-1"
        )
      end
    end

    it "reports an error in after_publish, once the event has been published" do
      registry.register(recording_publisher("Specs::Flaky", raise_in: :after_publish))
      described_class.new(registry).run(job(declaration("a.first", "Specs::Flaky"),
                                            declaration("a.second", "Specs::Flaky")))

      expect(calls.select { |call| call[0] == :publish }.map { |call| call[1] }).to eq([0, 1])
      expect(calls.select { |call| call[0] == :record })
        .to eq([[:record, "publisher_error", 1], [:record, "publisher_error", 1]])
      expect(calls.select { |call| call[0] == :on_publish_error }.map { |call| call[4].message })
        .to eq(["boom in after_publish", "boom in after_publish"])
    end

    it "logs an on_publish_error that raises and goes on" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Clumsy"
        def before_publish(*) = raise(ArgumentError, "bad input")
        def on_publish_error(*) = raise(IOError, "cannot report")
      end.new
      registry.register(publisher)
      described_class.new(registry).run(job(declaration("a.first", "Specs::Clumsy"),
                                            declaration("a.plain", nil)))

      expect(calls).to eq([[:record, "publisher_error", 1],
                           [:publish, 1, { amount: 5 }, {}, "default"]])
      expect(log.string).to include("publisher Specs::Clumsy raised ArgumentError: bad input")
      expect(log.string).to include("tasker_events: Specs::Clumsy#on_publish_error raised IOError")
    end

    it "looks publishers up when it runs, so a later registration applies" do
      runner = described_class.new(registry)
      registry.register(recording_publisher("Specs::Late"))
      runner.run(job(declaration("a.done", "Late")))
      expect(calls.assoc(:publish)).to eq([:publish, 0, { amount: 5 }, {}, "Specs::Late"])
    end
  end

  describe "publishers of a dispatched step" do
    let(:namespace) { unique_namespace("runner") }
    let(:received) { recording_subscriber("spec.#").received }

    def start_with(events)
      path = write_step_template(namespace, events)
      # Subscribes the recorder now: only events published after that reach it.
      received
      TaskerEvents.start(templates: [path])
    end

    def fast(name, publisher = nil)
      { "name" => name, "condition" => "success", "delivery_mode" => "fast",
        "publisher" => publisher }.compact
    end

    def declared_change
      before = TaskerEvents.stats[:declared_events]
      yield
      TaskerEvents.stats[:declared_events].to_h { |key, value| [key, value - before[key]] }
    end

    let(:step_result) do
      { success: true, result: { transaction_id: "TXN-1", amount: 10 },
        metadata: { execution_time_ms: 12 } }
    end

    it "gives every hook the step result, the declaration and the step context" do
      seen = []
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Inspector"
        define_method(:before_publish) { |*args| seen << args }
      end.new
      registry.register(publisher)
      start_with([fast("spec.done", "Inspector")])
      context = declared_step_context(namespace, attempt: 2)
      dispatch_and_flush(context, step_result)

      expect(seen.size).to eq(1)
      result, declaration, step_context = seen[0]
      expect(result).to eq(step_result)
      expect(declaration).to eq(name: "spec.done", description: nil, condition: "success",
                                delivery_mode: "fast", publisher: "Inspector", schema: nil)
      # Without a correlation_id the context carries the task's, as the event's metadata does.
      expect(step_context).to eq(
        context.slice(:task_uuid, :step_uuid, :step_name, :namespace, :task_name,
                      :task_version, :attempt).merge(correlation_id: context[:task_uuid])
      )
    end

    it "merges additional_metadata into the event, the standard fields winning" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Enricher"

        def additional_metadata(step_result, _declaration, _context)
          { region: "eu", execution_time_ms: step_result[:metadata][:execution_time_ms],
            namespace: "forged", task_uuid: "forged", step_name: "forged",
            correlation_id: "forged", fired_by: "forged", fired_at: "forged" }
        end
      end.new
      registry.register(publisher)
      start_with([fast("spec.done", "Specs::Enricher")])
      context = declared_step_context(namespace)
      dispatch_and_flush(context, step_result)

      metadata = received.fetch(0)[:metadata]
      expect(metadata.except(:fired_at)).to eq(
        task_uuid: context[:task_uuid], step_uuid: context[:step_uuid],
        step_name: DeclaredEventHelpers::STEP_NAME, namespace:,
        correlation_id: context[:task_uuid], fired_by: "Specs::Enricher",
        region: "eu", execution_time_ms: 12
      )
      expect(Time.iso8601(metadata[:fired_at])).to be_within(60).of(Time.now)
    end

    it "counts a skipped event as publisher_skipped" do
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Picky"
        def should_publish?(_result, declaration, _context) = declaration[:name] == "spec.kept"
      end.new
      registry.register(publisher)
      start_with([fast("spec.skipped", "Specs::Picky"), fast("spec.kept", "Specs::Picky")])

      change = declared_change { dispatch_and_flush(declared_step_context(namespace), step_result) }
      expect(received.map { |e| e[:event_name] }).to eq(["spec.kept"])
      expect(change).to include(publisher_skipped: 1, published: 1, publisher_error: 0)
    end

    %i[should_publish? transform_payload additional_metadata before_publish].each do |hook|
      it "publishes nothing for an event whose publisher raised in #{hook}, and the rest" do
        registry.register(recording_publisher("Specs::Flaky", raise_in: hook,
                                                              failing_event: "spec.first"))
        start_with([fast("spec.first", "Specs::Flaky"), fast("spec.second", "Specs::Flaky"),
                    fast("spec.third")])

        change = declared_change do
          dispatch_and_flush(declared_step_context(namespace), step_result)
        end
        expect(received.map { |e| e[:event_name] }).to eq(%w[spec.second spec.third])
        expect(received.map { |e| e[:metadata][:fired_by] }).to eq(%w[Specs::Flaky default])
        expect(change).to include(publisher_error: 1, published: 2)
        error_call = calls.assoc(:on_publish_error)
        expect(error_call[1]).to eq("spec.first")
        expect(error_call[4].message).to eq("boom in #{hook}")
        expect(log.string).to include("publisher Specs::Flaky raised RuntimeError: boom in " \
                                      "#{hook}; event not published event_name=spec.first " \
                                      "namespace=#{namespace}")
      end
    end

    it "keeps an event published when after_publish raises, and reports the error" do
      registry.register(recording_publisher("Specs::Flaky", raise_in: :after_publish,
                                                            failing_event: "spec.first"))
      start_with([fast("spec.first", "Specs::Flaky"), fast("spec.second", "Specs::Flaky")])

      change = declared_change { dispatch_and_flush(declared_step_context(namespace), step_result) }
      expect(received.map { |e| e[:event_name] }).to eq(%w[spec.first spec.second])
      expect(change).to include(publisher_error: 1, published: 2)
      expect(calls.assoc(:on_publish_error)[4].message).to eq("boom in after_publish")
    end

    it "counts a payload without a JSON form as a publisher error" do
      errors = calls
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Sloppy"
        def transform_payload(*) = { ratio: Float::NAN }
        define_method(:on_publish_error) { |*args| errors << args.last }
      end.new
      registry.register(publisher)
      start_with([fast("spec.first", "Specs::Sloppy"), fast("spec.second")])

      change = declared_change { dispatch_and_flush(declared_step_context(namespace), step_result) }
      expect(received.map { |e| e[:event_name] }).to eq(["spec.second"])
      expect(change).to include(publisher_error: 1, published: 1)
      expect(calls.fetch(0)).to be_a(TaskerEvents::ValidationError)
      expect(calls.fetch(0).message).to include("payload.ratio")
    end

    it "counts metadata that is not a Hash as a publisher error" do
      errors = calls
      publisher = Class.new(TaskerEvents::BasePublisher) do
        def name = "Specs::Listy"
        def additional_metadata(*) = [1, 2]
        define_method(:on_publish_error) { |*args| errors << args.last }
      end.new
      registry.register(publisher)
      start_with([fast("spec.first", "Specs::Listy")])

      change = declared_change { dispatch_and_flush(declared_step_context(namespace), step_result) }
      expect(received).to be_empty
      expect(change).to include(publisher_error: 1, published: 0)
      expect(calls.fetch(0)).to be_a(TaskerEvents::ValidationError)
      expect(calls.fetch(0).message).to eq("additional_metadata must return a Hash")
    end
  end
end
