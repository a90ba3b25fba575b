# frozen_string_literal: true

require "spec_helper"

RSpec.describe TaskerEvents::PublisherRegistry do
  subject(:registry) { described_class.instance }

  after { registry.reset! }

  def publisher(name)
    Class.new(TaskerEvents::BasePublisher) { define_method(:name) { name } }.new
  end

  describe "#register" do
    it "returns the registry, so registrations chain" do
      first = publisher("Payments::CardPublisher")
      second = publisher("Refunds::RefundPublisher")
      expect(registry.register(first).register(second)).to be(registry)
      expect(registry.registered_names).to eq(%w[Payments::CardPublisher Refunds::RefundPublisher])
    end

    it "registers under the publisher's name, by default its class name" do
      stub_const("Billing::InvoicePublisher", Class.new(TaskerEvents::BasePublisher))
      instance = Billing::InvoicePublisher.new
      registry.register(instance)
      expect(registry.get("Billing::InvoicePublisher")).to be(instance)
    end

    it "refuses an object that is not a BasePublisher, naming it" do
      expect { registry.register("PaymentEventPublisher") }
        .to raise_error(TaskerEvents::ValidationError,
                        "\"PaymentEventPublisher\" is not a TaskerEvents::BasePublisher")
      expect(registry.registered_names).to be_empty
    end

    it "refuses a second publisher with the same name and keeps the first" do
      first = publisher("Payments::CardPublisher")
      registry.register(first)
      expect { registry.register(publisher("Payments::CardPublisher")) }
        .to raise_error(TaskerEvents::ValidationError,
                        "a publisher named \"Payments::CardPublisher\" is already registered")
      expect(registry.get("Payments::CardPublisher")).to be(first)
    end

    it "keeps every publisher registered from several threads at once" do
      names = Array.new(40) { |i| "Concurrent::Publisher#{i}" }
      names.map { |name| Thread.new { registry.register(publisher(name)) } }.each(&:join)
      expect(registry.registered_names).to match_array(names)
    end
  end

  describe "#get" do
    let(:card) { publisher("DomainEvents::Publishers::PaymentEventPublisher") }

    before { registry.register(card) }

    it "finds a publisher by its full name" do
      expect(registry.get("DomainEvents::Publishers::PaymentEventPublisher")).to be(card)
    end

    it "finds a publisher by the last segments of its name" do
      expect(registry.get("PaymentEventPublisher")).to be(card)
      expect(registry.get("Publishers::PaymentEventPublisher")).to be(card)
    end

    it "matches whole segments only" do
      expect(registry.get("EventPublisher")).to be_nil
      expect(registry.get("ublishers::PaymentEventPublisher")).to be_nil
      expect(registry.get("DomainEvents::Publishers")).to be_nil
    end

    it "returns nil for an unknown name" do
      expect(registry.get("RefundPublisher")).to be_nil
    end

    it "returns nil when the short name fits more than one publisher" do
      other = publisher("Legacy::PaymentEventPublisher")
      registry.register(other)
      expect(registry.get("PaymentEventPublisher")).to be_nil
      expect(registry.get("Legacy::PaymentEventPublisher")).to be(other)
      expect(registry.get("Publishers::PaymentEventPublisher")).to be(card)
    end

    it "prefers an exact match over a suffix match" do
      short = publisher("PaymentEventPublisher")
      registry.register(short)
      expect(registry.get("PaymentEventPublisher")).to be(short)
    end
  end

  describe "#get_strict" do
    it "returns the publisher get would return" do
      card = publisher("DomainEvents::Publishers::PaymentEventPublisher")
      registry.register(card)
      expect(registry.get_strict("PaymentEventPublisher")).to be(card)
    end

    it "raises UnknownPublisherError naming the publisher and what is registered" do
      registry.register(publisher("A::Pub")).register(publisher("B::Pub"))
      expect { registry.get_strict("Pub") }
        .to raise_error(TaskerEvents::UnknownPublisherError,
                        "no publisher registered as \"Pub\"; registered: A::Pub, B::Pub")
      expect { registry.get_strict("Missing") }
        .to raise_error(TaskerEvents::ConfigError, /"Missing"/)
    end
  end

  describe "#registered?" do
    it "answers as get does, including suffixes and ambiguity" do
      registry.register(publisher("A::Pub"))
      expect(registry.registered?("A::Pub")).to be(true)
      expect(registry.registered?("Pub")).to be(true)
      expect(registry.registered?("Other")).to be(false)
      registry.register(publisher("B::Pub"))
      expect(registry.registered?("Pub")).to be(false)
    end
  end

  describe "#registered_names" do
    it "lists the full names in registration order" do
      expect(registry.registered_names).to eq([])
      registry.register(publisher("Z::Last")).register(publisher("A::First"))
      expect(registry.registered_names).to eq(%w[Z::Last A::First])
    end
  end

  describe "#unregister" do
    it "removes the publisher and returns it" do
      card = publisher("Payments::CardPublisher")
      registry.register(card).register(publisher("Refunds::RefundPublisher"))
      expect(registry.unregister("Payments::CardPublisher")).to be(card)
      expect(registry.registered_names).to eq(%w[Refunds::RefundPublisher])
      expect(registry.get("CardPublisher")).to be_nil
    end

    it "returns nil for a name that is not registered" do
      expect(registry.unregister("Payments::CardPublisher")).to be_nil
    end

    it "needs the full name" do
      registry.register(publisher("Payments::CardPublisher"))
      expect(registry.unregister("CardPublisher")).to be_nil
      expect(registry.registered_names).to eq(%w[Payments::CardPublisher])
    end

    it "frees the name for a new registration" do
      registry.register(publisher("Payments::CardPublisher"))
      registry.unregister("Payments::CardPublisher")
      replacement = publisher("Payments::CardPublisher")
      registry.register(replacement)
      expect(registry.get("Payments::CardPublisher")).to be(replacement)
    end
  end

  describe "#freeze!" do
    it "refuses later registrations and keeps the earlier ones" do
      card = publisher("Payments::CardPublisher")
      expect(registry.register(card).freeze!).to be(registry)
      expect(registry).to be_frozen
      expect { registry.register(publisher("Refunds::RefundPublisher")) }
        .to raise_error(TaskerEvents::Error, /registry is frozen/)
      expect(registry.registered_names).to eq(%w[Payments::CardPublisher])
      expect(registry.get("CardPublisher")).to be(card)
    end

    it "still checks the argument first" do
      registry.freeze!
      expect { registry.register(Object.new) }.to raise_error(TaskerEvents::ValidationError)
    end
  end

  describe "#reset!" do
    it "forgets every publisher and unfreezes" do
      registry.register(publisher("Payments::CardPublisher")).freeze!
      expect(registry.reset!).to be(registry)
      expect(registry.registered_names).to be_empty
      expect(registry).not_to be_frozen
      registry.register(publisher("Payments::CardPublisher"))
      expect(registry.registered?("Payments::CardPublisher")).to be(true)
    end
  end

  it "is one registry for the process" do
    expect(described_class.instance).to be(registry)
    expect { described_class.new }.to raise_error(NoMethodError)
  end
end
