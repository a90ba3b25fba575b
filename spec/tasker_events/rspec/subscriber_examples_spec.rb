# frozen_string_literal: true

require "spec_helper"
require_relative "../../../examples/subscribers/logging_subscriber"
require_relative "../../../examples/subscribers/metrics_subscriber"

RSpec.describe "the shared examples \"a tasker_events subscriber\"" do
  name = TaskerEvents::RSpec::SubscriberExamples::NAME

  describe "against the example subscribers" do
    it_behaves_like name, DomainEvents::Subscribers::LoggingSubscriber

    it_behaves_like name, DomainEvents::Subscribers::MetricsSubscriber do
      after { DomainEvents::Subscribers::MetricsSubscriber.reset_counters! }
    end

    it_behaves_like name, DomainEvents::Subscribers::LoggingSubscriber.new
  end

  describe "against broken subscribers" do
    def subscriber(patterns = ["payment.*"], &body)
      Class.new(TaskerEvents::BaseSubscriber) do
        define_singleton_method(:patterns) { patterns }
        define_method(:handle) { |_event| nil }
        class_eval(&body) if body
      end
    end

    def failures(results)
      results.compact
    end

    it "all pass for a subscriber that keeps the contract" do
      results = run_shared_examples(name, subscriber)
      expect(results.size).to eq(8)
      expect(failures(results)).to be_empty
    end

    it "fail for a class that is not a BaseSubscriber" do
      plain = Class.new do
        def patterns = ["payment.*"]
        def handle(_event) = nil
      end
      results = run_shared_examples(name, plain)
      expect(results["is a TaskerEvents::BaseSubscriber, as SubscriberRegistry requires"])
        .to include("expected #<#{plain}", "to be a kind of TaskerEvents::BaseSubscriber")
    end

    it "fail for a class that needs constructor arguments" do
      needy = subscriber { define_method(:initialize) { |ledger| @ledger = ledger } }
      results = run_shared_examples(name, needy)
      expect(results["can be built without arguments, as SubscriberRegistry#register does"])
        .to include("ArgumentError", "wrong number of arguments")
    end

    it "pass for a subscriber given as an object built with arguments" do
      needy = subscriber { define_method(:initialize) { |ledger| @ledger = ledger } }
      results = run_shared_examples(name, needy.new(:ledger))
      expect(results.size).to eq(7)
      expect(failures(results)).to be_empty
    end

    it "fail for a subscriber without patterns" do
      results = run_shared_examples(name, subscriber([]))
      expect(results["declares at least one pattern"]).to eq("no patterns: call subscribes_to")
    end

    it "fail for a pattern that no event name can match, or that is invalid" do
      results = run_shared_examples(name, subscriber(["payment"]))
      expect(results["declares only valid patterns, each matching some event name"])
        .to start_with('pattern "payment" matches no valid event name (invalid event name ' \
                       '"payment"')

      results = run_shared_examples(name, subscriber(["payment processed"]))
      expect(results["declares only valid patterns, each matching some event name"])
        .to include("expected no Exception", 'invalid pattern "payment processed"')
    end

    it "fail for a handle that does not take the event alone" do
      results = run_shared_examples(name, subscriber { define_method(:handle) { |_e, _x| nil } })
      expect(results["has a handle method that takes the event"])
        .to include("#handle cannot be called with 1 argument(s)", "[:req, :_e], [:req, :_x]")
    end

    it "fail for a subscriber that does not implement handle" do
      bare = Class.new(TaskerEvents::BaseSubscriber) { subscribes_to "payment.*" }
      results = run_shared_examples(name, bare)
      expect(results["runs its hooks on a frozen event for each pattern without raising"])
        .to include("NotImplementedError", "must implement #handle(event)")
    end

    it "fail for a handle that changes the event it shares with other subscribers" do
      mutating = subscriber { define_method(:handle) { |event| event[:payload][:seen] = true } }
      results = run_shared_examples(name, mutating)
      expect(results["runs its hooks on a frozen event for each pattern without raising"])
        .to include("FrozenError", "can't modify frozen Hash")
    end

    it "pass a handle the payload it needs through let(:tasker_events_sample_payload)" do
      picky = subscriber { define_method(:handle) { |event| event[:payload].fetch(:amount) } }
      results = run_shared_examples(name, picky)
      expect(results["runs its hooks on a frozen event for each pattern without raising"])
        .to include("KeyError", "key not found: :amount")

      results = run_shared_examples(name, picky) do
        let(:tasker_events_sample_payload) { { amount: 1 } }
      end
      expect(failures(results)).to be_empty
    end

    it "fail when an error in handle escapes instead of reaching on_handle_error" do
      leaky = subscriber { define_method(:dispatch) { |event| handle(event) } }
      results = run_shared_examples(name, leaky)
      expect(results["passes an error raised in handle to on_handle_error instead of raising it"])
        .to include("raised by the tasker_events shared examples")
    end

    it "fail when before_handle skips the sample event, saying how to give another" do
      skipping = subscriber { define_method(:before_handle) { |_event| false } }
      results = run_shared_examples(name, skipping)
      expect(results["passes an error raised in handle to on_handle_error instead of raising it"])
        .to include("on_handle_error was given [] instead of (event, error); if before_handle " \
                    "skips the sample event, give one it takes with " \
                    "let(:tasker_events_sample_payload)")
    end

    it "fail for an on_handle_error that raises or takes other arguments" do
      raising = subscriber { define_method(:on_handle_error) { |_event, error| raise error } }
      results = run_shared_examples(name, raising)
      expect(results["accepts (event, error) in on_handle_error without raising"])
        .to include("SubscriberChecks::SampleError", "given by the tasker_events shared examples")

      one_argument = subscriber { define_method(:on_handle_error) { |_error| nil } }
      results = run_shared_examples(name, one_argument)
      expect(results["accepts (event, error) in on_handle_error without raising"])
        .to include("ArgumentError", "wrong number of arguments (given 2, expected 1)")
    end
  end
end
