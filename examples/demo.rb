# frozen_string_literal: true

# A payments worker in miniature. Run it with bin/demo, or with DATABASE_URL set:
#   ruby -Ilib examples/demo.rb

require "tasker_events"
require "pg"
require "json"
require "securerandom"

# Prints fast and broadcast payment events the moment the drain thread hands them over.
class PaymentNotifier < TaskerEvents::BaseSubscriber
  subscribes_to "payment.*"

  def handle(event)
    payload = event[:payload]
    puts format("  [subscriber] %<name>-20s %<mode>-9s amount=%<amount>-7s event_id=%<id>s",
                name: event[:event_name], mode: event[:delivery_mode], amount: payload[:amount],
                id: event[:event_id])
  end
end

# Counts every in-process event, whatever its name.
class EventCounter < TaskerEvents::BaseSubscriber
  subscribes_to "#"

  def handle(_event)
    @count = count + 1
  end

  def count = @count || 0
end

database_url = ENV.fetch("DATABASE_URL") { abort "DATABASE_URL is not set (bin/demo sets it)" }
TaskerEvents.start(database_url:, install_pgmq: true)
registry = TaskerEvents::SubscriberRegistry.instance
registry.register(PaymentNotifier).register(EventCounter).start_all!

task_uuid = SecureRandom.uuid
step = { namespace: "payments", task_uuid:, step_name: "process_payment" }
puts "== publishing (task #{task_uuid})"
TaskerEvents.publish("payment.authorized", { transaction_id: "TXN-1", amount: 99.99 },
                     delivery_mode: :fast, **step)
TaskerEvents.publish("payment.processed", { transaction_id: "TXN-1", amount: 99.99,
                                            currency: "USD" }, delivery_mode: :broadcast, **step)
TaskerEvents.publish("payment.receipt_sent", { transaction_id: "TXN-1", email: "a@example.com" },
                     delivery_mode: :durable, **step)
TaskerEvents.publish("payment.refunded", { transaction_id: "TXN-0", amount: 12.5 },
                     delivery_mode: :broadcast, metadata: { reason: "duplicate" }, **step)
TaskerEvents.flush(timeout: 10) or abort "events were not delivered within 10 s"

puts "\n== reading payments_domain_events like an external consumer"
connection = PG.connect(database_url)
# Read with a 30 s visibility timeout, then delete: PGMQ's at-least-once consumption.
messages = connection.exec(
  "SELECT msg_id, message FROM pgmq.read('payments_domain_events', 30, 100)"
)
messages.each do |row|
  event = JSON.parse(row["message"])
  puts format("  [pgmq msg %<msg_id>-3s] %<name>-20s %<mode>-9s event_id=%<id>s",
              msg_id: row["msg_id"], name: event["event_name"], mode: event["delivery_mode"],
              id: event["event_id"])
  connection.exec_params("SELECT pgmq.delete('payments_domain_events', $1::bigint)",
                         [row["msg_id"]])
end
connection.close

TaskerEvents.shutdown
stats = TaskerEvents.stats
puts "\n== summary"
puts format("  published        durable=%<durable>d fast=%<fast>d broadcast=%<broadcast>d",
            stats[:published])
%i[durable ruby_subscribers rust_subscribers].each do |path|
  counts = stats[path]
  dropped = counts[:dropped].select { |_, n| n.positive? }
  puts format("  %<path>-16s accepted=%<accepted>d delivered=%<delivered>d dropped=%<dropped>s",
              path:, accepted: counts[:accepted], delivered: counts[:delivered],
              dropped: dropped.empty? ? "0" : dropped)
end
puts "  in-process events counted by EventCounter: #{registry.subscribers.last.count}"
